"""The benchmark's derived ratios, and its results as a plain-text table."""

from __future__ import annotations

from typing import Any


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Ratios between the systems' figures in ``results`` (None where one is unmeasurable)."""
    ours = results["ours"]["seconds_per_iteration"]
    out: dict[str, float | None] = {"floor_over_ours": results["floor"]["floor_seconds"] / ours}
    for peer in ("mllib", "sklearn"):
        if peer in results:
            theirs = results[peer]["seconds_per_iteration"]
            out[f"{peer}_over_ours_per_iteration"] = None if theirs is None else theirs / ours
    if "mllib" in results:
        out["mllib_over_ours_end_to_end"] = (results["mllib"]["end_to_end_seconds"]
                                             / results["ours"]["end_to_end_seconds"])
    if "mllib" in results and "scoring" in results:
        scoring = results["scoring"]
        out["mllib_over_ours_scoring"] = scoring["mllib_seconds"] / scoring["ours_seconds"]
        # The part of scoring a model can change: time beyond reading and writing the rows.
        beyond = scoring["ours_seconds"] - scoring["write_only_seconds"]
        out["mllib_over_ours_scoring_beyond_write"] = (
            (scoring["mllib_seconds"] - scoring["write_only_seconds"]) / beyond
            if beyond > 0 else None)
    if "sklearn" in results:
        out["log_likelihood_relative_difference_vs_sklearn"] = abs(
            results["ours"]["mean_log_likelihood"] - results["sklearn"]["mean_log_likelihood"]
        ) / abs(results["sklearn"]["mean_log_likelihood"])
    if "rounds" in results:
        out["ours_random_rows_over_kernel_alone"] = (
            results["rounds"]["random_rows_seconds_per_iteration"]
            / results["kernel_alone"]["seconds_per_iteration"])
    return out


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table of the results."""
    lines = [f"{'system':<10}{'s/iter':>10}{'end-to-end s':>14}{'mean loglik':>16}"]
    for name in ("ours", "mllib", "sklearn"):
        if name in results:
            r = results[name]
            per_iteration = r["seconds_per_iteration"]
            shown = "n/a" if per_iteration is None else f"{per_iteration:.4f}"
            lines.append(f"{name:<10}{shown:>10}"
                         f"{r['end_to_end_seconds']:>14.2f}{r['mean_log_likelihood']:>16.6f}")
    floor = results["floor"]
    lines.append(f"{'floor':<10}{floor['floor_seconds']:>10.4f}")
    if "mllib" in results:
        mllib = results["mllib"]
        lines.append(f"mllib ran {mllib['iterations_run']} of {results['spec']['iterations']} "
                     "iterations; its model's mean log-likelihood recomputed in log space: "
                     f"{mllib['mean_log_likelihood_recomputed']:.6f}")
    if "mllib" in results:
        lines.append("end-to-end is each system's second full-data fit; the first took: ours "
                     f"{results['ours']['first_fit_seconds']:.2f} s (same fit), mllib "
                     f"{results['mllib']['short_fit_seconds']:.2f} s (its short fit)")
    if "warm_up_seconds" in results:
        lines.append(f"warm-up (every system once on a 20k-row slice, untimed above): "
                     f"{results['warm_up_seconds']:.1f} s")
    ours = results["ours"]
    lines.append("ours with one Spark job per EM pass (no resident tasks): "
                 f"{ours['job_per_pass_seconds_per_iteration']:.4f} s/iter, "
                 f"{ours['job_per_pass_end_to_end_seconds']:.2f} s end-to-end")
    cpu = ours["cpu_seconds"]
    if cpu:
        wall = results["ours"]["end_to_end_seconds"]
        lines.append(f"CPU seconds during our timed fit ({wall:.2f} s wall): python workers "
                     f"{cpu['python_workers']:.2f}, JVM {cpu['jvm']:.2f}, driver python "
                     f"{cpu['driver_python']:.2f}")
    mb = 1 << 20
    heap = ours.get("driver_jvm_heap_peak_bytes")
    lines.append("during our timed fit: block files on the executors' disks "
                 f"{ours['executor_disk_bytes'] / mb:.0f} MB"
                 + ("" if heap is None else
                    f"; driver JVM heap peak (sum of its pools' peaks) {heap / mb:.0f} MB"))
    scaling = results.get("scaling")
    if scaling:
        lines.append(f"scaling: a sample of {scaling['rows']:.0f} rows takes "
                     f"{scaling['seconds_per_iteration']:.4f} s/iter; "
                     f"{scaling['rows_ratio']:.2f}x the rows cost "
                     f"{scaling['cost_ratio']:.2f}x per iteration")
    memory = results.get("worker_memory")
    if memory:
        if memory.get("driver_jvm_peak_rss_bytes"):
            lines.append("driver JVM peak RSS over the whole run (MLlib's fits included): "
                         f"{memory['driver_jvm_peak_rss_bytes'] / mb:.0f} MB")
        lines.append(f"python workers ({memory['python_processes']:.0f} processes): peak RSS "
                     f"{memory['worker_peak_rss_bytes'] / mb:.0f} MB; an interpreter importing "
                     f"what they import {memory['imports_rss_bytes'] / mb:.0f} MB; largest "
                     f"partition's features {memory['largest_partition_feature_bytes'] / mb:.0f}"
                     f" MB; (peak - imports) / features "
                     f"{memory['peak_beyond_imports_over_feature_bytes']:.2f}")
    rounds = results.get("rounds")
    if rounds:
        for start, label in (("random_rows", "random-rows start"), ("kmeans", "k-means|| start")):
            line = (f"ours from a {label}: {rounds[f'{start}_seconds_per_iteration']:.4f} s/iter"
                    f" (median of {len(rounds['rounds'])} rounds), initialisation "
                    f"{rounds[f'{start}_initialisation_seconds']:.2f} s")
            share = rounds[f"{start}_initialisation_share"]
            if share is not None and start == "kmeans":
                line += f" ({100 * share:.0f} % of initialisation + EM)"
            ratio = rounds.get(f"mllib_over_{start}_per_iteration")
            if ratio is not None:
                each = ", ".join(
                    f"{r:.1f}" for r in rounds[f"mllib_over_{start}_per_iteration_rounds"])
                line += f"; MLlib / ours per iteration {ratio:.2f} (rounds: {each})"
            lines.append(line)
        for index, entry in enumerate(rounds["rounds"]):
            seconds = " ".join(f"{s:.3f}" for s in entry["random_rows"]["iteration_seconds"])
            lines.append(f"round {index + 1}, random-rows start, seconds per iteration: {seconds}")
        kernel = results["kernel_alone"]
        lines.append(f"the kernel alone ({kernel['processes']} plain Python processes, no Spark): "
                     f"{kernel['seconds_per_iteration']:.4f} s/iter")
    quality = results.get("initialisation_quality")
    if quality:
        lines.append("final mean log-likelihood from our k-means|| / from MLlib's KMeans, per "
                     "seed: " + ", ".join(f"{a:.5f} / {b:.5f}" for a, b in zip(
                         quality["ours_kmeans_parallel"], quality["mllib_kmeans"])))
        lines.append("initialisation seconds, ours / MLlib KMeans: " + ", ".join(
            f"{a:.2f} / {b:.2f}" for a, b in zip(quality["ours_initialisation_seconds"],
                                                 quality["mllib_kmeans_seconds"])))
    for name, entry in (results.get("fit_multiple") or {}).items():
        line = (f"fitMultiple, {entry['models']} models ({name}): shared passes "
                f"{entry['fit_multiple_seconds']:.1f} s, separate fits "
                f"{entry['separate_fits_seconds']:.1f} s ({entry['separate_over_shared']:.1f}x)")
        if "mllib_seconds" in entry:
            line += (f", MLlib's {entry['models']} fits {entry['mllib_seconds']:.1f} s "
                     f"({entry['mllib_over_shared']:.1f}x)")
        lines.append(line)
    if "scoring" in results:
        lines.append("scoring (transform + Parquet write, medians): " + ", ".join(
            f"{k.replace('_seconds', '')} {v:.2f} s" for k, v in results["scoring"].items()
            if k.endswith("_seconds")))
    lines += [f"{k}: {'n/a' if v is None else f'{v:.4g}'}" for k, v in results["ratios"].items()]
    return "\n".join(lines)
