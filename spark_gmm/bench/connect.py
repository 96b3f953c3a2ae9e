"""The benchmark on Spark Connect (``spark-gmm bench --remote ...``): ours and MLlib, both
through a Connect client, in interleaved rounds; the same spec in a classic session (run
first, in a process of its own: one process cannot hold both kinds of session); and where a
Connect pass spends its time."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict
from typing import Any

from pyspark.sql import SparkSession

from ..runtime.connect import default_parallelism
from ..runtime.progress import phase
from .benchmark import BenchmarkSpec, _mllib, benchmark_input, data_path, generate, logger
from .report import faster
from .rounds import interleaved_rounds, kernel_alone


def classic_benchmark(spec: BenchmarkSpec, master: str) -> dict[str, Any]:
    """The same spec in a classic session, in a child process (no scoring, no
    scikit-learn): its benchmark.json."""
    work_dir = os.path.join(spec.work_dir, "classic")
    if not os.path.exists(data_path(spec)):
        generate(spec, data_path(spec))
    command = [sys.executable, "-m", "spark_gmm.cli", "bench", "--n", str(spec.n),
               "--d", str(spec.d), "--k", str(spec.k), "--partitions", str(spec.partitions),
               "--iterations", str(spec.iterations), "--seed", str(spec.seed),
               "--rounds", str(spec.rounds), "--work-dir", work_dir, "--master", master,
               "--input", data_path(spec), "--skip-sklearn", "--skip-scoring"]
    if not spec.run_mllib:
        command.append("--skip-mllib")
    with phase("benchmark: the same spec in a classic session, in a child process", logger):
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(work_dir, "benchmark.json")) as handle:
        return json.load(handle)


def run_connect_benchmark(spark: SparkSession, spec: BenchmarkSpec,
                          classic: dict[str, Any] | None) -> dict[str, Any]:
    """Interleaved rounds of ours and MLlib through ``spark`` (a Connect session), the
    kernel alone on the same rows, and ``classic``'s figures beside them."""
    path, df, init, mean = benchmark_input(spark, spec)
    n = df.count()
    # The first queries of a server compile code and start Python workers: a slice first.
    warm = BenchmarkSpec(**{**asdict(spec), "iterations": 2, "rounds": 1})
    # Its fits log their own progress: here only where the warm-up starts.
    logger.info("benchmark: warm-up on a 20k-row slice ...")
    interleaved_rounds(df.limit(min(n, 20_000)), warm, init,
                       (lambda _: _mllib(df.limit(min(n, 20_000)), warm, "warm-up"))
                       if spec.run_mllib else None)
    run_mllib = (lambda where: {k: v for k, v in _mllib(df, spec, where).items()
                                if k != "_model"}) if spec.run_mllib else None
    rounds = interleaved_rounds(df, spec, init, run_mllib)
    last = rounds.pop("_last_model")
    cores = default_parallelism(spark)
    passes = last.runRecord.passSeconds
    with phase("benchmark: the kernel alone, no Spark", logger):
        alone = kernel_alone(path, df.columns, last, mean,
                             min(cores, os.cpu_count() or cores, spec.partitions),
                             spec.iterations)
    results: dict[str, Any] = {
        "spec": asdict(spec), "rounds": rounds, "cores": cores,
        # One fit's passes (its initialisation, iterations and final statistics).
        "pass_seconds": passes, "passes": last.runRecord.jobPasses, "kernel_alone": alone}
    if run_mllib is not None:
        results["mllib_end_to_end_seconds"] = statistics.median(
            r["mllib"]["end_to_end_seconds"] for r in rounds["rounds"])
    results["ours_end_to_end_seconds"] = statistics.median(
        r["random_rows"]["end_to_end_seconds"] for r in rounds["rounds"])
    if classic is not None:
        results["classic"] = {
            "random_rows_seconds_per_iteration":
                classic["rounds"]["random_rows_seconds_per_iteration"],
            "kmeans_seconds_per_iteration": classic["rounds"]["kmeans_seconds_per_iteration"],
            "ours_end_to_end_seconds": statistics.median(
                r["random_rows"]["end_to_end_seconds"] for r in classic["rounds"]["rounds"]),
            "mllib_seconds_per_iteration": classic.get("mllib", {}).get(
                "seconds_per_iteration")}
    os.makedirs(spec.work_dir, exist_ok=True)
    with open(os.path.join(spec.work_dir, "connect_benchmark.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    return results


def format_connect(results: dict[str, Any]) -> str:
    """The Connect benchmark as a short table."""
    rounds, spec = results["rounds"], results["spec"]
    lines = [f"Spark Connect, {spec['n']} x {spec['d']}, K={spec['k']}, "
             f"{spec['iterations']} iterations, {spec['rounds']} interleaved rounds (medians)"]
    ours = rounds["random_rows_seconds_per_iteration"]
    lines.append(f"  ours, random-rows start   {ours:.3f} s/iter")
    lines.append(f"  ours, k-means|| start     {rounds['kmeans_seconds_per_iteration']:.3f} "
                 "s/iter")
    if "mllib_over_random_rows_per_iteration" in rounds:
        ratio = rounds["mllib_over_random_rows_per_iteration"]
        each = ", ".join(f"{r:.1f}×" for r in rounds["mllib_over_random_rows_per_iteration_rounds"])
        lines.append("  MLlib against ours per iteration: not measured (too short to measure)"
                     if ratio is None else "  " + faster(
                         "ours", 1.0, "MLlib", ratio,
                         f"per iteration on Connect (per round: {each})"))
        lines.append(f"  end to end: ours {results['ours_end_to_end_seconds']:.1f} s, "
                     f"MLlib {results['mllib_end_to_end_seconds']:.1f} s")
    alone = results["kernel_alone"]["seconds_per_iteration"]
    lines.append(f"  kernel alone              {alone:.3f} s/iter")
    classic = results.get("classic")
    if classic:
        theirs = classic["random_rows_seconds_per_iteration"]
        lines.append(f"  classic session: ours {theirs:.3f} s/iter ("
                     + faster("Connect", ours, "the classic session", theirs, "")
                     + "), end to end "
                     f"{classic['ours_end_to_end_seconds']:.1f} s"
                     + (f", MLlib {classic['mllib_seconds_per_iteration']:.3f} s/iter"
                        if classic.get("mllib_seconds_per_iteration") else ""))
    passes = results["pass_seconds"]
    if passes:
        count = results["passes"]
        lines.append(f"  one fit's {count} passes: {passes['wall']:.2f} s waited by the "
                     f"client, {passes['task_fold']:.2f} task-seconds reading and folding "
                     f"blocks, {passes['client_merge']:.3f} s decoding and merging answers")
    return "\n".join(lines)
