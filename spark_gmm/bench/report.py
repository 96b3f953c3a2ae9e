"""The benchmark's derived ratios, and its results as text a reader can take in at a glance.

``format_table`` prints one table for the run's shape (a column per system: ours from the
random-rows start, ours from k-means‖, MLlib, scikit-learn; every cell a figure or the
reason there is none) and, below it, the comparisons in words. The raw record, every key
of it, goes only into the JSON result file.
"""

from __future__ import annotations

import re
import statistics
import textwrap
from collections.abc import Sequence
from typing import Any

MB = 1 << 20
WIDTH = 100  # the sentences below the table are wrapped to this many characters
SYSTEMS = ("ours, random-rows start", "ours, k-means|| start", "MLlib", "scikit-learn")


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Ratios between the systems' figures in ``results`` (None where one is unmeasurable)."""
    ours = results["ours"]["seconds_per_iteration"]
    out: dict[str, float | None] = {"floor_over_ours": results["floor"]["floor_seconds"] / ours}
    if "packed_floor" in results:
        packed = results["packed_floor"]["floor_seconds"]
        out["ours_over_packed_floor"] = ours / packed
        if results.get("kernel_alone"):
            out["kernel_alone_over_packed_floor"] = (
                results["kernel_alone"]["seconds_per_iteration"] / packed)
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


def faster(first: str, first_seconds: float, second: str, second_seconds: float,
           what: str) -> str:
    """``'ours is 9.8× faster than MLlib per iteration'``, or the other way round when the
    second system took less time (``what``, if any, ends the sentence)."""
    tail = f" {what}" if what else ""
    if first_seconds <= second_seconds:
        return f"{first} is {second_seconds / first_seconds:.1f}× faster than {second}{tail}"
    return f"{second} is {first_seconds / second_seconds:.1f}× faster than {first}{tail}"


def _times(ratio: float, first: str, second: str, what: str = "") -> str:
    """A ratio second/first (a time over a time) as :func:`faster` words."""
    return faster(first, 1.0, second, ratio, what)


def _seconds(value: float) -> str:
    """Seconds to 4 decimals, or 3 significant digits below a millisecond."""
    return f"{value:.4f}" if value >= 1e-3 else f"{value:.3g}"


def _bytes(value: float) -> str:
    return f"{value / MB:.0f} MB" if value >= MB else f"{value / 1024:.0f} KB"


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _mllib_per_iteration_reason(entry: dict[str, Any]) -> str:
    """Why MLlib's seconds per iteration are missing from ``entry`` (one pair of its fits)."""
    if entry["iterations_run"] <= 1:
        return "MLlib stopped after 1 iteration"
    return "too short to measure"


class _Columns:
    """The table's cells, one row per measure and one column per system."""

    def __init__(self, results: dict[str, Any], unavailable: Sequence[str]) -> None:
        self.results, self.spec = results, results["spec"]
        self.rounds = (results.get("rounds") or {}).get("rounds") or []
        sklearn_missing = "not installed" if "sklearn" in unavailable else "--skip-sklearn"
        self.absent = {
            SYSTEMS[1]: None if self.rounds else "not run: --rounds 0",
            SYSTEMS[2]: None if "mllib" in results else "not run: --skip-mllib",
            SYSTEMS[3]: None if "sklearn" in results else f"not run: {sklearn_missing}"}

    def _ours(self, start: str, key: str) -> float:
        # With rounds, ours is the median of its rounds; without, the one timed fit.
        if self.rounds:
            return statistics.median(r[start][key] for r in self.rounds)
        return self.results["ours"][key]

    def _mllib_entries(self) -> list[dict[str, Any]]:
        return [r["mllib"] for r in self.rounds] if self.rounds else [self.results["mllib"]]

    def seconds_per_iteration(self) -> list[float | str]:
        mllib: float | str = "n/a"
        if "mllib" in self.results:
            entries = self._mllib_entries()
            measured = [e["seconds_per_iteration"] for e in entries
                        if e["seconds_per_iteration"] is not None]
            mllib = (statistics.median(measured) if measured
                     else _mllib_per_iteration_reason(entries[0]))
            if measured and len(measured) < len(entries):
                mllib = f"{mllib:.4f} ({len(measured)} of {len(entries)} rounds)"
        return [self._ours("random_rows", "seconds_per_iteration"),
                self._ours("kmeans", "seconds_per_iteration") if self.rounds else "n/a",
                mllib, self.results.get("sklearn", {}).get("seconds_per_iteration", "n/a")]

    def end_to_end(self) -> list[float | str]:
        mllib = (statistics.median(e["end_to_end_seconds"] for e in self._mllib_entries())
                 if "mllib" in self.results else "n/a")
        return [self._ours("random_rows", "end_to_end_seconds"),
                self._ours("kmeans", "end_to_end_seconds") if self.rounds else "n/a",
                mllib, self.results.get("sklearn", {}).get("end_to_end_seconds", "n/a")]

    def initialisation(self) -> list[float | str]:
        kmeans: float | str = "n/a"
        if self.rounds:
            rounds = self.results["rounds"]
            share = rounds["kmeans_initialisation_share"]
            kmeans = f"{rounds['kmeans_initialisation_seconds']:.2f}" + (
                "" if share is None else f" ({100 * share:.0f} % of init + EM)")
        return ["given start", kmeans, "not reported by MLlib", "given start"]

    def iterations(self) -> list[str]:
        wanted = self.spec["iterations"]
        mllib = "n/a"
        if "mllib" in self.results:
            runs = sorted({e["iterations_run"] for e in self._mllib_entries()})
            mllib = "/".join(str(n) for n in runs) + f" of {wanted}" + (
                " (stopped early)" if runs[0] < wanted else "")
        return [f"{wanted} of {wanted}", f"{wanted} of {wanted}", mllib,
                f"{wanted} of {wanted}"]

    def log_likelihood(self) -> list[float | str]:
        mllib = (self.results["mllib"]["mean_log_likelihood"] if "mllib" in self.results
                 else "n/a")
        return [self._ours("random_rows", "mean_log_likelihood"),
                self._ours("kmeans", "mean_log_likelihood") if self.rounds else "n/a", mllib,
                self.results.get("sklearn", {}).get("mean_log_likelihood", "n/a")]

    def rows(self) -> list[tuple[str, list[str]]]:
        """(measure, one cell per system) with every cell a figure or a reason."""
        measures = (("seconds per iteration", self.seconds_per_iteration(), "{:.4f}"),
                    ("seconds end to end", self.end_to_end(), "{:.2f}"),
                    ("initialisation seconds", self.initialisation(), "{:.2f}"),
                    ("EM iterations run", self.iterations(), "{}"),
                    ("final mean log-likelihood", self.log_likelihood(), "{:.6f}"))
        out = []
        for label, cells, number in measures:
            shown = []
            for system, cell in zip(SYSTEMS, cells):
                reason = self.absent.get(system)
                shown.append(reason if reason is not None
                             else cell if isinstance(cell, str) else number.format(cell))
            out.append((label, shown))
        return out


def _grid(header: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Left-aligned columns at least two spaces apart (cells never hold two spaces)."""
    table = [("", list(header))] + [(label, list(cells)) for label, cells in rows]
    widths = [max(len(label) for label, _ in table)] + [
        max(len(cells[i]) for _, cells in table) for i in range(len(header))]
    return ["  ".join([label.ljust(widths[0])] + [c.ljust(w) for c, w in zip(cells, widths[1:])]
                      ).rstrip() for label, cells in table]


def _title(results: dict[str, Any]) -> str:
    spec = results["spec"]
    rounds = len((results.get("rounds") or {}).get("rounds") or [])
    return (f"{spec['n']:,} rows × {spec['d']} features, K={spec['k']}, full covariance, "
            f"{spec['iterations']} EM iterations, {spec['partitions']} partitions, Spark "
            f"{results.get('spark_version', '?')}\n"
            + (f"ours and MLlib: medians of {rounds} interleaved rounds" if rounds > 1
               else "ours and MLlib: 1 interleaved round" if rounds
               else "one timed fit per system (no interleaved rounds)"))


def _comparisons(results: dict[str, Any], table: _Columns) -> list[str]:
    """The ratios between the systems, in words."""
    lines = []
    rounds = results.get("rounds") or {}
    ours = float(table.seconds_per_iteration()[0])
    if "mllib" not in results:
        lines.append("MLlib not run (--skip-mllib): no comparison with it")
    elif table.rounds:
        for start, label in (("random_rows", "random-rows"), ("kmeans", "k-means||")):
            ratio = rounds.get(f"mllib_over_{start}_per_iteration")
            measured = rounds[f"mllib_over_{start}_per_iteration_rounds"]
            each = ("one round" if len(measured) == 1 else "median of the rounds' ratios: "
                    + ", ".join(f"{r:.1f}×" for r in measured))
            if len(measured) < len(table.rounds):
                each += f"; {len(measured)} of {len(table.rounds)} rounds measured"
            lines.append(
                f"MLlib against ours from the {label} start per iteration: not measured "
                f"({_mllib_per_iteration_reason(table.rounds[0]['mllib'])})" if ratio is None
                else _times(ratio, "ours", "MLlib", f"per iteration from the {label} start "
                            f"({each})"))
    else:
        ratio = results["ratios"]["mllib_over_ours_per_iteration"]
        lines.append(
            "MLlib against ours per iteration: not measured "
            f"({_mllib_per_iteration_reason(results['mllib'])})" if ratio is None
            else _times(ratio, "ours", "MLlib", "per iteration"))
    ends = table.end_to_end()
    if "mllib" in results:
        lines.append(faster("ours", float(ends[0]), "MLlib", float(ends[2]), "end to end"))
    if "sklearn" in results:
        lines.append(faster("ours", ours, "scikit-learn", results["sklearn"][
            "seconds_per_iteration"], "per iteration, from the same random-rows start"))
        lines.append("ours and scikit-learn from the same start end at the same mean "
                     "log-likelihood (relative difference "
                     f"{results['ratios']['log_likelihood_relative_difference_vs_sklearn']:.1e})")
    if "mllib" in results:
        lines.append("MLlib reports no time per iteration: its figure is (its "
                     f"{table.spec['iterations']}-iteration fit − its 1-iteration fit) / the "
                     "iterations between them")
        lines.append("MLlib reports the log-likelihood of its last E-step; its final model "
                     "scored in log space: "
                     f"{results['mllib']['mean_log_likelihood_recomputed']:.6f}")
    kernel, floor = results.get("kernel_alone"), results["floor"]
    # What ours is measured against: (what it is, its seconds per iteration)
    bounds = [] if not kernel else [(
        f"the kernel alone (the same statistics on the same rows in {kernel['processes']} plain "
        "Python processes, no Spark)", kernel["seconds_per_iteration"])]
    bounds.append((f"the GEMM floor (the direct algorithm's FLOPs at numpy's measured GEMM rate "
                   f"on {floor['cores']} cores)", floor["floor_seconds"]))
    if "packed_floor" in results:
        packed = results["packed_floor"]
        rate = packed["gemm_flops_per_second_per_core"] / 1e9
        bounds.append(("the packed kernel's GEMM floor (its two GEMMs' FLOPs at the rate numpy "
                       f"reaches on their own shapes, {rate:.1f} GFLOP/s per core, on "
                       f"{packed['cores']} cores)",
                       packed["floor_seconds"]))
    lines += [f"{what}: {_seconds(seconds)} s per iteration; ours takes {ours / seconds:.2f}× "
              "its time" for what, seconds in bounds]
    if kernel and "packed_floor" in results:
        lines.append("the kernel alone takes "
                     f"{results['ratios']['kernel_alone_over_packed_floor']:.2f}× the packed "
                     "kernel's GEMM floor")
    return lines


def _our_timed_fit(results: dict[str, Any]) -> list[str]:
    """Our single timed fit: its cost in CPU, memory and disk, and the same fit without
    resident tasks."""
    ours = results["ours"]
    lines = [f"our timed fit (random-rows start, the second of two identical fits; the first "
             f"took {ours['first_fit_seconds']:.2f} s): {ours['seconds_per_iteration']:.4f} s "
             f"per iteration, {ours['end_to_end_seconds']:.2f} s end to end"]
    lines.append("the same fit with one Spark job per EM pass instead of resident tasks: "
                 f"{ours['job_per_pass_seconds_per_iteration']:.4f} s per iteration, "
                 f"{ours['job_per_pass_end_to_end_seconds']:.2f} s end to end: " + faster(
                     "the resident-task fit", ours["seconds_per_iteration"],
                     "the job-per-pass fit", ours["job_per_pass_seconds_per_iteration"],
                     "per iteration"))
    cpu = ours["cpu_seconds"]
    if cpu:
        lines.append(f"CPU seconds during our timed fit: Python workers "
                     f"{cpu['python_workers']:.2f}, JVM {cpu['jvm']:.2f}, driver Python "
                     f"{cpu['driver_python']:.2f}")
    heap = ours.get("driver_jvm_heap_peak_bytes")
    lines.append("block files on the executors' disks during our timed fit: "
                 f"{_bytes(ours['executor_disk_bytes'])}"
                 + ("" if heap is None else
                    f"; driver JVM heap peak (sum of its pools' peaks) {_bytes(heap)}"))
    memory = results.get("worker_memory")
    if memory:
        if memory.get("driver_jvm_peak_rss_bytes"):
            lines.append("driver JVM peak RSS over the whole run (MLlib's fits included): "
                         f"{_bytes(memory['driver_jvm_peak_rss_bytes'])}")
        lines.append(f"Python workers ({memory['python_processes']:.0f} processes): peak RSS "
                     f"{_bytes(memory['worker_peak_rss_bytes'])}, of which an interpreter "
                     f"importing what they import takes {_bytes(memory['imports_rss_bytes'])}"
                     "; the largest partition's features are "
                     f"{_bytes(memory['largest_partition_feature_bytes'])} (the rest of "
                     f"the peak is {memory['peak_beyond_imports_over_feature_bytes']:.2f}× "
                     "them)")
    scaling = results.get("scaling")
    if scaling:
        lines.append(f"scaling: a 25 % sample ({scaling['rows']:,.0f} rows) takes "
                     f"{scaling['seconds_per_iteration']:.4f} s per iteration: "
                     f"{scaling['rows_ratio']:.2f}× the rows cost "
                     f"{scaling['cost_ratio']:.2f}× the time per iteration")
    return lines


def _rounds_and_extras(results: dict[str, Any]) -> list[str]:
    """Every round's iterations, the initialisation quality, scoring and fitMultiple."""
    lines = []
    for index, entry in enumerate((results.get("rounds") or {}).get("rounds") or []):
        seconds = " ".join(f"{s:.3f}" for s in entry["random_rows"]["iteration_seconds"])
        lines.append(f"round {index + 1}, random-rows start, seconds per iteration: {seconds}")
    quality = results.get("initialisation_quality")
    if quality:
        lines.append("final mean log-likelihood from our k-means|| / from MLlib's KMeans, per "
                     "seed: " + ", ".join(f"{a:.5f} / {b:.5f}" for a, b in zip(
                         quality["ours_kmeans_parallel"], quality["mllib_kmeans"])))
        lines.append("initialisation seconds, ours / MLlib's KMeans, per seed: " + ", ".join(
            f"{a:.2f} / {b:.2f}" for a, b in zip(quality["ours_initialisation_seconds"],
                                                 quality["mllib_kmeans_seconds"])))
    scoring = results.get("scoring")
    if scoring:
        line = (f"scoring (transform + Parquet write, median of 3 rounds): writing the rows "
                f"alone {scoring['write_only_seconds']:.2f} s, ours "
                f"{scoring['ours_seconds']:.2f} s")
        if "mllib_seconds" in scoring:
            line += (f", MLlib {scoring['mllib_seconds']:.2f} s; " + faster(
                "ours", scoring["ours_seconds"], "MLlib", scoring["mllib_seconds"],
                "at scoring"))
            beyond = results["ratios"].get("mllib_over_ours_scoring_beyond_write")
            line += ("; beyond the write: " + (
                "not measured (ours took no longer than the write)" if beyond is None
                else _times(beyond, "ours", "MLlib")))
        lines.append(line)
    for entry in (results.get("fit_multiple") or {}).values():
        line = (f"fitMultiple, {entry['models']} models: shared passes "
                f"{entry['fit_multiple_seconds']:.1f} s, separate fits "
                f"{entry['separate_fits_seconds']:.1f} s: " + _times(
                    entry["separate_over_shared"], "shared passes", "separate fits"))
        if "mllib_seconds" in entry:
            line += (f"; MLlib's {entry['models']} fits {entry['mllib_seconds']:.1f} s: "
                     + _times(entry["mllib_over_shared"], "shared passes", "MLlib"))
        lines.append(line)
    if "warm_up_seconds" in results:
        lines.append("warm-up (every system once on a 20k-row slice, untimed): "
                     f"{results['warm_up_seconds']:.1f} s")
    return lines


def format_table(results: dict[str, Any], unavailable: Sequence[str] = ()) -> str:
    """The results as text: a table for the run's shape, then the comparisons in words.

    Parameters
    ----------
    results : dict
        What ``run_benchmark`` returned (a result file's ``results``).
    unavailable : sequence of str
        Optional modules that were missing (``"sklearn"``): their column says so.
    """
    table = _Columns(results, unavailable)
    sections = [("Compared", _comparisons(results, table)),
                ("Our timed fit", _our_timed_fit(results)),
                ("Every round, initialisation, scoring", _rounds_and_extras(results))]
    text = [_title(results), *_grid(SYSTEMS, table.rows())]
    for heading, lines in sections:
        if lines:
            text += ["", heading + ":"] + [_wrapped(line) for line in lines]
    return "\n".join(text)


def _wrapped(line: str) -> str:
    # A number keeps its unit on its line: the space between them does not break.
    glued = re.sub(r"(\d) (s|MB|KB|%)\b", "\\1\u00a0\\2", line)
    return textwrap.fill(glued, WIDTH, initial_indent="  ", subsequent_indent="    ",
                         break_on_hyphens=False).replace("\u00a0", " ")
