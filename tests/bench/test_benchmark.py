"""The benchmark job runs end to end on tiny sizes (its timings are not asserted)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import sys

import numpy as np
import pyspark
import pytest

from spark_gmm.bench.benchmark import BenchmarkSpec, run_benchmark
from spark_gmm.bench.report import format_table

pytestmark = pytest.mark.slow


def test_benchmark_runs_and_reports(spark, tmp_path, caplog) -> None:
    spec = BenchmarkSpec(n=3000, d=3, k=2, partitions=2, iterations=5, rounds=1,
                         work_dir=str(tmp_path / "bench"))
    caplog.set_level(logging.INFO)
    results = run_benchmark(spark, spec)
    for system in ("ours", "mllib", "sklearn"):
        assert results[system]["end_to_end_seconds"] > 0
    # both systems' timed fits come after a first, untimed fit of their own on the full data
    assert results["ours"]["first_fit_seconds"] > 0 and results["mllib"]["short_fit_seconds"] > 0
    assert results["ours"]["seconds_per_iteration"] > 0
    # the same fit once more with one Spark job per pass: same model, its own timings
    ours = results["ours"]
    assert ours["job_per_pass_seconds_per_iteration"] > 0
    assert ours["job_per_pass_end_to_end_seconds"] > 0
    assert ours["job_per_pass_mean_log_likelihood"] == pytest.approx(
        ours["mean_log_likelihood"], rel=1e-12)
    assert results["sklearn"]["seconds_per_iteration"] > 0
    mllib = results["mllib"]["seconds_per_iteration"]
    assert mllib is None or mllib > 0  # a difference of two fits: may drown in noise here
    # same initial model, same iterations: the same final log-likelihood as scikit-learn
    assert results["ratios"]["log_likelihood_relative_difference_vs_sklearn"] < 1e-6
    assert results["floor"]["flops_per_iteration"] == 2 * 3000 * 3 * 2 * 3 * 2
    # two GEMMs of 2·n·K·M FLOPs; M = 3·4/2 + 3 + 1 packed features at D = 3
    assert results["packed_floor"]["flops_per_iteration"] == 2 * 2 * 3000 * 2 * 10
    assert results["ratios"]["kernel_alone_over_packed_floor"] == pytest.approx(
        results["kernel_alone"]["seconds_per_iteration"]
        / results["packed_floor"]["floor_seconds"])
    scoring = results["scoring"]
    assert min(scoring["write_only_seconds"], scoring["ours_seconds"],
               scoring["mllib_seconds"]) > 0
    assert results["warm_up_seconds"] > 0
    # MLlib reports the log-likelihood of its last E-step, before the last M-step: its final
    # model, scored by us, can only be better (EM never decreases it) when MLlib is healthy.
    mllib = results["mllib"]
    assert 1 <= mllib["iterations_run"] <= 5
    assert mllib["mean_log_likelihood_recomputed"] >= mllib["mean_log_likelihood"] - 1e-9
    assert "mllib_over_ours_scoring_beyond_write" in results["ratios"]
    # a 25 % sample of the rows, fitted with the same partitions
    scaling = results["scaling"]
    assert 2000 < scaling["rows"] * 4 < 4000 and scaling["rows_ratio"] == 3000 / scaling["rows"]
    assert scaling["cost_ratio"] == (results["ours"]["seconds_per_iteration"]
                                     / scaling["seconds_per_iteration"])
    # local[2]: the workers are below this JVM; 2 partitions of 1,500 rows of 3 features
    memory = results["worker_memory"]
    assert memory["largest_partition_feature_bytes"] == 1500 * 3 * 8
    assert memory["python_processes"] >= 2  # PySpark's daemon and at least one worker
    cpu = results["ours"]["cpu_seconds"]  # the workers ran the EM passes, not the driver
    assert cpu["python_workers"] > 0 and cpu["jvm"] > 0
    # 3,000 rows of 3 features stored while our fit ran; the JVMs report their own peaks
    assert ours["executor_disk_bytes"] == 3000 * 3 * 8
    assert ours["driver_jvm_heap_peak_bytes"] > 0
    assert memory["driver_jvm_peak_rss_bytes"] > ours["driver_jvm_heap_peak_bytes"] / 4
    # every worker imported what the fresh interpreter imports
    assert memory["worker_peak_rss_bytes"] > 0.8 * memory["imports_rss_bytes"]
    written = json.load(open(os.path.join(spec.work_dir, "benchmark.json")))
    assert written["ratios"] == results["ratios"]
    # one round of ours from both starts and MLlib; the kernel alone in two plain processes
    rounds = results["rounds"]
    [entry] = rounds["rounds"]
    assert len(entry["random_rows"]["iteration_seconds"]) == 5
    assert entry["kmeans"]["phase_seconds"]["initialisation"] > 0
    assert 0 < rounds["kmeans_initialisation_share"] < 1
    assert rounds["mllib_over_random_rows_per_iteration_rounds"] == (
        [] if entry["mllib"]["seconds_per_iteration"] is None else [pytest.approx(
            entry["mllib"]["seconds_per_iteration"]
            / entry["random_rows"]["seconds_per_iteration"])])
    kernel = results["kernel_alone"]
    assert kernel["processes"] == 2 and len(kernel["iteration_seconds"]) == 5
    assert results["ratios"]["ours_random_rows_over_kernel_alone"] > 0
    table = re.sub(r"\n    (?=\S)", " ", format_table(results))  # wrapped lines joined
    assert "in 2 plain Python processes, no Spark" in table
    assert "round 1, random-rows start, seconds per iteration" in table
    assert re.search(r"(ours|MLlib) is [0-9.]+× faster than (MLlib|ours) per iteration", table)
    assert "the GEMM floor" in table and "the packed kernel's GEMM floor" in table
    assert "the second of two identical fits" in table and "one Spark job per EM pass" in table
    assert "× the rows cost" in table and "Python workers" in table
    # a progress line when each phase starts, in the order the phases run
    started = [r.getMessage()[:-4] for r in caplog.records
               if r.name.startswith("spark_gmm.bench") and r.getMessage().endswith(" ...")]
    expected = [
        "benchmark: generating 3,000 rows into", "benchmark: reading",
        "benchmark: every row into the driver's memory",
        "benchmark: warm-up, every system once on a 20k-row slice",
        "benchmark: ours, first fit (warm-up)", "benchmark: MLlib, 1-iteration fit (warm-up)",
        "benchmark: scoring round 1 of 3, writing the rows alone (warm-up)",
        "benchmark: ours, first fit (full data)", "benchmark: ours, timed fit (full data)",
        "benchmark: ours, one Spark job per pass (full data)",
        "benchmark: the Python workers' memory", "benchmark: ours on a 25 % sample",
        "benchmark: MLlib, 1-iteration fit (full data)",
        "benchmark: MLlib, 5-iteration fit (full data)",
        "benchmark: MLlib's model scored in log space", "benchmark: scikit-learn, 5 iterations",
        "benchmark: round 1 of 1, ours from the random-rows start",
        "benchmark: round 1 of 1, ours from the k-means|| start",
        "benchmark: MLlib, 1-iteration fit (round 1 of 1)",
        "benchmark: MLlib, 5-iteration fit (round 1 of 1)",
        "benchmark: the kernel alone, no Spark", "benchmark: the GEMM floor, direct algorithm",
        "benchmark: the GEMM floor, packed kernel",
        "benchmark: scoring round 1 of 3, writing the rows alone (full data)",
        "benchmark: scoring round 3 of 3, MLlib (full data)"]
    positions = [next(i for i, line in enumerate(started) if line.startswith(prefix))
                 for prefix in expected]
    assert positions == sorted(positions), started
    # every phase that starts also ends, with its duration
    ended = [r.getMessage() for r in caplog.records if " took " in r.getMessage()]
    assert len(ended) >= len(expected)
    # no silent gap: something is logged at least every few seconds (heartbeats every 4 s)
    times = [r.created for r in caplog.records]
    assert max(b - a for a, b in itertools.pairwise(times)) < 6.0


def test_bench_without_its_extra_says_so_first_and_skips_those_readings(
        spark, tmp_path, monkeypatch, capsys) -> None:
    from spark_gmm.cli import main

    # As on a plain `pip install .`: neither scikit-learn nor psutil can be imported.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "psutil", None)
    work_dir = tmp_path / "bench"
    code = main(["bench", "--n", "800", "--d", "2", "--k", "2", "--iterations", "2",
                 "--rounds", "1", "--skip-mllib", "--no-warm-up", "--work-dir", str(work_dir)])
    assert code == 0
    captured = capsys.readouterr()
    # the first thing it says, before any Spark work
    assert captured.err.startswith("spark-gmm bench: psutil, sklearn not installed")
    assert "pip install 'spark-gmm[bench]'" in captured.err
    results = json.load(open(work_dir / "benchmark.json"))
    assert "sklearn" not in results and results["worker_memory"] is None
    assert results["ours"]["cpu_seconds"] is None and results["ours"]["end_to_end_seconds"] > 0


def test_bench_output_is_a_result_file_with_commit_date_machine_and_every_round(
        spark, tmp_path, monkeypatch) -> None:
    import datetime
    import subprocess

    from spark_gmm.cli import main

    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    output = tmp_path / "results" / "tiny.json"
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    code = main(["bench", "--n", "800", "--d", "2", "--k", "2", "--iterations", "3",
                 "--rounds", "2", "--skip-mllib", "--skip-sklearn", "--skip-scoring",
                 "--no-warm-up", "--work-dir", str(tmp_path / "bench"),
                 "--output", str(output)])
    assert code == 0
    record = json.load(open(output))
    assert set(record) == {"commit", "date", "machine", "parameters", "results"}
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                         cwd=os.path.dirname(__file__))
    status = subprocess.run(["git", "status", "--porcelain", "--", "spark_gmm"],
                            capture_output=True, text=True,
                            cwd=os.path.join(os.path.dirname(__file__), "..", ".."))
    expected = git.stdout.strip() + ("-dirty" if status.stdout.strip() else "")
    assert record["commit"] == (expected if git.returncode == 0 else "unknown")
    date = datetime.datetime.fromisoformat(record["date"])
    assert date.tzinfo is not None and before <= date <= datetime.datetime.now(datetime.UTC)
    machine = record["machine"]
    assert machine["cpu"]["model"] and machine["cpu"]["cores"] == os.cpu_count()
    assert set(machine["cpu"]["flags"]) == {"avx2", "avx512f"}
    assert machine["memory_bytes"] > 0
    # numpy's BLAS at least (scipy's may be loaded too, by earlier tests in this process)
    assert any("numpy" in entry["filepath"] for entry in machine["blas"])
    for blas in machine["blas"]:
        assert blas["library"] and blas["version"] and blas["threads"] >= 1
        assert "architecture" in blas
    assert machine["versions"]["numpy"] == np.__version__
    assert machine["versions"]["pyspark"] == pyspark.__version__
    assert machine["openblas_environment"] == {
        "OPENBLAS_CORETYPE": {"set": False, "value": None},
        "OPENBLAS_L2_SIZE": {"set": True, "value": "1048576"}}
    parameters = record["parameters"]
    assert (parameters["n"], parameters["d"], parameters["k"], parameters["rounds"]) == (
        800, 2, 2, 2)
    assert parameters["output"] == str(output)
    results = record["results"]
    # every round's numbers, not only the medians
    rounds = results["rounds"]["rounds"]
    assert len(rounds) == 2
    for entry in rounds:
        for start in ("random_rows", "kmeans"):
            assert len(entry[start]["iteration_seconds"]) == 3
            assert all(seconds > 0 for seconds in entry[start]["iteration_seconds"])
    assert len(results["ours"]["iteration_seconds"]) == 3
    assert len(results["kernel_alone"]["iteration_seconds"]) == 3
    assert len(results["floor"]["sample_seconds"]) == 5
    assert "mllib" not in results and "scoring" not in results


def test_result_commit_outside_a_checkout_is_unknown(tmp_path) -> None:
    from spark_gmm.bench.machine import commit

    assert commit(str(tmp_path)) == "unknown"
