"""Real failures injected into real Spark runs: failed tasks are retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm.distributed import FAULT_INJECTION_ENV
from spark_gmm.etl.config import build_config
from spark_gmm.etl.jobs import run_fit
from tests.helpers import job_sections, make_mixture, write_job_config

pytestmark = pytest.mark.slow


def _data(tmp_path, n: int = 3000) -> str:
    x, *_ = make_mixture(n=n, seed=29, k=3)
    path = tmp_path / "in"
    path.mkdir()
    for part in range(3):
        rows = slice(part * n // 3, (part + 1) * n // 3)
        pq.write_table(pa.table({"a": x[rows, 0], "b": x[rows, 1], "c": x[rows, 2]}),
                       str(path / f"part-{part}.parquet"))
    return str(path)


def _config(tmp_path, data: str, name: str, master: str = "local[2]") -> dict:
    # the fixture's parallelism, so files pack into the same partitions everywhere
    return job_sections(tmp_path / name, data, {"k": 3, "seed": 4, "max_iter": 5},
                        spark={"master": master, "conf": {"spark.default.parallelism": "4"}})


def _diagnostics(tmp_path, name: str) -> dict:
    return json.load(open(tmp_path / name / "model" / "diagnostics.json"))


def _fit_job(tmp_path, data: str, name: str, fault: bool) -> subprocess.CompletedProcess:
    values = _config(tmp_path, data, name, master="local[2,4]")  # up to 4 attempts per task
    conf = write_job_config(str(tmp_path / f"{name}.toml"), values)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop(FAULT_INJECTION_ENV, None)
    if fault:
        env[FAULT_INJECTION_ENV] = "1"
    job = subprocess.run([sys.executable, "-m", "spark_gmm.cli", "fit", "--config", conf],
                         env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr[-3000:]
    return job


def test_failed_statistics_task_is_retried_without_double_counting(spark, tmp_path) -> None:
    data = _data(tmp_path)
    run_fit(spark, build_config(_config(tmp_path, data, "clean")))  # fault-free, in-process
    faulty_job = _fit_job(tmp_path, data, "faulty", fault=True)
    # the failures really happened: every statistics pass lost its partition-1 task once
    assert faulty_job.stderr.count("injected test fault in partition 1") >= 5
    clean, retried = _diagnostics(tmp_path, "clean"), _diagnostics(tmp_path, "faulty")
    assert retried["num_iter"] == clean["num_iter"] == 5
    # statistics are pure functions of (data, broadcast): a retry recomputes, never adds
    assert retried["log_likelihood_history"] == clean["log_likelihood_history"]
    assert retried["original_units"] == clean["original_units"]
    assert retried["cluster_sizes"] == clean["cluster_sizes"]
