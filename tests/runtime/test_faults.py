"""Real failures injected into real Spark runs: failed tasks are retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.runtime.resident import ENABLED_CONF, resident_tasks_setting
from tests.helpers import job_sections, make_mixture, write_job_config
from tests.job_hooks import entry_command

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


def _config(tmp_path, data: str, name: str, master: str = "local[2]",
            resident_tasks: bool = True) -> dict:
    # the fixture's parallelism, so files pack into the same partitions everywhere
    conf = {"spark.default.parallelism": "4", ENABLED_CONF: str(resident_tasks).lower()}
    return job_sections(tmp_path / name, data, {"k": 3, "seed": 4, "max_iter": 5},
                        spark={"master": master, "conf": conf})


def _diagnostics(tmp_path, name: str) -> dict:
    return json.load(open(tmp_path / name / "model" / "diagnostics.json"))


def _fit_job(tmp_path, data: str, name: str, resident_tasks: bool
             ) -> subprocess.CompletedProcess:
    # up to 4 attempts per task. The 3 partitions of 1,000 rows are served by 2 tasks of
    # 1,500 rows each (runtime/balance.py), placed at partitions 0 and 2 of their job's RDD:
    # the second task of every pass fails on its first attempt. --verbose: Spark's own log
    # (its lost tasks, with their errors) reaches stderr.
    values = _config(tmp_path, data, name, "local[2,4]", resident_tasks)
    conf = write_job_config(str(tmp_path / f"{name}.toml"), values)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    job = subprocess.run([*entry_command("--fail-first-attempt", "2"), "fit", "--config", conf,
                          "--verbose"], env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr[-3000:]
    return job


@pytest.mark.parametrize("resident_tasks", [True, False])
def test_failed_statistics_task_is_retried_without_double_counting(
        spark, tmp_path, resident_tasks: bool) -> None:
    data = _data(tmp_path)
    # fault-free, in-process, the passes run the same way
    with resident_tasks_setting(spark, resident_tasks):
        run_fit(spark, build_config(_config(tmp_path, data, "clean")))
    faulty_job = _fit_job(tmp_path, data, "faulty", resident_tasks)
    failures = faulty_job.stderr.count("injected test fault in partition 2")
    if resident_tasks:
        # the resident task 1 died on its first request (the initial sample); its second
        # attempt connected again and served every pass: the sample, 5 iterations, the final
        assert failures >= 1
        assert "resident task 1 reconnected (attempt 1)" in faulty_job.stderr
        assert _diagnostics(tmp_path, "faulty")["em_passes"] == {"resident_tasks": 7,
                                                                 "spark_jobs": 0}
    else:
        # every pass (the sample, 5 iterations, the final) lost its second task once
        assert failures >= 7
        assert _diagnostics(tmp_path, "faulty")["em_passes"] == {"resident_tasks": 0,
                                                                 "spark_jobs": 7}
    clean, retried = _diagnostics(tmp_path, "clean"), _diagnostics(tmp_path, "faulty")
    assert retried["num_iter"] == clean["num_iter"] == 5
    # statistics are pure functions of (data, mixtures): a retry recomputes, never adds
    assert retried["log_likelihood_history"] == clean["log_likelihood_history"]
    assert retried["original_units"] == clean["original_units"]
    assert retried["cluster_sizes"] == clean["cluster_sizes"]
