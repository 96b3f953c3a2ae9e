"""A real Spark standalone cluster (one master, two workers on 127.0.0.1, more joining and
leaving while a fit runs) runs the jobs submitted with spark-submit, and is stopped by PID
whatever happens."""

from __future__ import annotations

import itertools
import json
import logging
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyspark
import pytest

from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.etl.package import build_archive
from tests.helpers import checkpointed_iterations, job_sections, make_mixture, write_job_config

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)
ROOT = pathlib.Path(__file__).resolve().parents[2]
SPARK_HOME = pathlib.Path(pyspark.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "SPARK_HOME": str(SPARK_HOME), "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1",
            "SPARK_WORKER_OPTS": "-Dspark.decommission.enabled=true"}


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as r:
            return int(json.load(r).get("aliveworkers", 0))
    except (OSError, ValueError):  # not listening yet, or an empty answer while it starts
        return 0


@dataclass
class Cluster:
    master: str
    ui_port: int
    logs: pathlib.Path
    workers: list[subprocess.Popen]
    _processes: list[subprocess.Popen]

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")
        process = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], env=_env(),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._processes.append(process)
        return process

    def start_worker(self) -> subprocess.Popen:
        """One more worker (1 core, 1 GiB); it decommissions itself on SIGPWR, as a node an
        autoscaler takes away does."""
        name = f"worker{len(self._processes)}"
        worker = self._start(name, "org.apache.spark.deploy.worker.Worker", self.master,
                             "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                             "--webui-port", str(_free_port()),
                             "--work-dir", str(self.logs / f"work-{name}"))
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, alive: int) -> None:
        deadline = time.monotonic() + 120
        while _alive_workers(self.ui_port) != alive:
            assert time.monotonic() < deadline, (self.logs / "master.log").read_text()[-3000:]
            time.sleep(0.5)

    def stop_worker(self, worker: subprocess.Popen) -> None:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        self.workers.remove(worker)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("cluster")
    port, ui_port = _free_port(), _free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", ui_port, logs, [], [])
    try:
        master = cluster._start("master", "org.apache.spark.deploy.master.Master",
                                "--host", "127.0.0.1", "--port", str(port),
                                "--webui-port", str(ui_port))
        for _ in range(2):
            cluster.start_worker()
        deadline = time.monotonic() + 120
        while _alive_workers(ui_port) < 2:
            assert time.monotonic() < deadline, (logs / "master.log").read_text()[-3000:]
            assert all(p.poll() is None for p in cluster._processes), "a cluster process died"
            time.sleep(0.5)
        assert master.poll() is None
        yield cluster
    finally:
        for process in cluster._processes:  # stop exactly what we started, by PID
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in cluster._processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _submit_command(master: str, archive: str, job: str, *args: str,
                    conf: dict[str, str] | None = None) -> list[str]:
    settings = {"spark.executor.cores": "1", "spark.executor.memory": "512m",
                "spark.cores.max": "2", **(conf or {})}
    return [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master,
            "--py-files", archive,
            *(arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")),
            "--driver-java-options",
            f"-Dlog4j2.configurationFile={ROOT / 'conf' / 'log4j2.properties'}",
            str(ROOT / (job if "/" in job else f"jobs/{job}")), *args]


# The fit job with a pause in every checkpoint write (the driver script of tests/job_hooks.py):
# resident tasks run an iteration of these tests' rows in milliseconds.
_PAUSED_FIT = ("tests/job_hooks.py", "--checkpoint-pause", "0.2", "--", "fit")


def _submit(master: str, archive: str, job: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_submit_command(master, archive, job, *args), env=_env(),
                          capture_output=True, text=True, timeout=600)


def _write_events(directory: pathlib.Path, x: np.ndarray, files: int = 4) -> None:
    directory.mkdir()
    rows_per_file = len(x) // files
    for part in range(files):  # a directory of Parquet files, as a scheduler would leave it
        rows = slice(part * rows_per_file, (part + 1) * rows_per_file)
        pq.write_table(pa.table({"event_id": np.arange(len(x))[rows], "a": x[rows, 0],
                                 "b": x[rows, 1], "c": x[rows, 2]}),
                       str(directory / f"part-{part}.parquet"))


def _active_app_cores(ui_port: int) -> int:
    """Cores the master has given the running applications (-1 while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as r:
            return sum(int(app.get("cores", 0)) for app in json.load(r).get("activeapps", []))
    except (OSError, ValueError):
        return -1


def _wait_for_iterations(checkpoint: pathlib.Path, job: subprocess.Popen, n: int) -> int:
    deadline = time.monotonic() + 300
    while (checkpointed_iterations(checkpoint) < n and job.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.05)
    return checkpointed_iterations(checkpoint)


def _assert_equals_undisturbed(spark, values: dict, tmp_path: pathlib.Path, n_rows: int,
                               n_iter: int) -> None:
    # the same fit, undisturbed, in the local session (the fit is partition-invariant)
    reference = run_fit(spark, build_config({
        **values, "model": {**values["model"], "path": str(tmp_path / "reference")},
        "output": {"path": str(tmp_path / "reference_labelled")}, "checkpoint": {}}))
    with open(tmp_path / "model" / "diagnostics.json") as handle:
        diagnostics = json.load(handle)
    assert diagnostics["num_iter"] == reference["num_iter"] == n_iter
    np.testing.assert_allclose(diagnostics["log_likelihood_history"],
                               reference["log_likelihood_history"], rtol=1e-8)
    for key in ("means", "covariances"):
        np.testing.assert_allclose(diagnostics["original_units"][key],
                                   reference["original_units"][key], rtol=1e-8, atol=1e-10)
    assert pq.read_table(str(tmp_path / "labelled")).num_rows == n_rows


def _wait_for_log(log: pathlib.Path, text: str, job: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while text not in log.read_text() and job.poll() is None:
        assert time.monotonic() < deadline, f"no {text!r} in the driver's log"
        time.sleep(0.1)


def test_fit_and_score_jobs_on_an_elastic_cluster(cluster, spark, tmp_path) -> None:
    """Dynamic allocation on: a node joins mid-fit and the application's second executor
    starts there; then the first node is decommissioned (the way autoscalers take nodes
    away) and its executor leaves mid-fit. The score job then labels the same rows."""
    first, second = cluster.workers[:2]
    cluster.stop_worker(second)  # room for one executor when the job starts
    cluster.wait_for_workers(1)
    try:
        conf, archive = _fit_while_nodes_come_and_go(cluster, spark, tmp_path, first)
    finally:
        cluster.stop_worker(first)  # a decommissioned worker stays until it is stopped
        while len(cluster.workers) < 2:  # the next test loses one of two workers
            cluster.start_worker()
        cluster.wait_for_workers(2)
    score = _submit(cluster.master, archive, "score_gmm.py", "--config", conf,
                    "--set", f"output.path={tmp_path / 'scored'}")
    assert score.returncode == 0, score.stderr[-5000:]
    scored = pq.read_table(str(tmp_path / "scored")).to_pandas().sort_values("event_id")
    labelled = pq.read_table(str(tmp_path / "labelled")).to_pandas().sort_values("event_id")
    np.testing.assert_array_equal(scored["prediction"].to_numpy(),
                                  labelled["prediction"].to_numpy())


def _fit_while_nodes_come_and_go(cluster: Cluster, spark, tmp_path: pathlib.Path,
                                 first: subprocess.Popen) -> tuple[str, str]:
    x, labels, _, _ = make_mixture(n=40_000, seed=41, k=4)
    data = tmp_path / "events"
    _write_events(data, x)
    checkpoint = tmp_path / "state" / "em.json"
    n_iter = 80
    values = job_sections(tmp_path, str(data), {"k": 4, "seed": 5, "max_iter": n_iter,
                                                "init_mode": "k-means++"},
                          checkpoint={"path": str(checkpoint)})
    conf = write_job_config(str(tmp_path / "job.toml"), values)
    archive = build_archive(str(tmp_path / "dist" / "spark_gmm.zip"))
    elastic = {"spark.dynamicAllocation.enabled": "true",
               "spark.dynamicAllocation.shuffleTracking.enabled": "true",
               "spark.dynamicAllocation.minExecutors": "2",
               "spark.dynamicAllocation.maxExecutors": "2",
               "spark.decommission.enabled": "true"}
    driver_log = tmp_path / "driver.log"
    with open(driver_log, "w") as log:
        job = subprocess.Popen(_submit_command(cluster.master, archive, *_PAUSED_FIT,
                                               "--config", conf, conf=elastic),
                               env=_env(),
                               stdout=log, stderr=subprocess.STDOUT)  # spark-submit sends
        # the Python driver's logging to its stdout
        try:
            joined_at = _wait_for_iterations(checkpoint, job, 3)
            assert _active_app_cores(cluster.ui_port) == 1
            cluster.start_worker()  # a node joins; the application's second executor starts
            _wait_for_log(driver_log, "2 resident tasks serve the EM passes", job)
            grown_at = checkpointed_iterations(checkpoint)
            os.kill(first.pid, signal.SIGPWR)  # the first node is taken away
            _wait_for_log(driver_log, "are leaving the application", job)
            deadline = time.monotonic() + 120
            while _active_app_cores(cluster.ui_port) != 1 and job.poll() is None:
                assert time.monotonic() < deadline, "the decommissioned executor stayed"
                time.sleep(0.1)
            left_at = checkpointed_iterations(checkpoint)
            job.wait(timeout=600)
        finally:
            if job.poll() is None:
                job.kill()
    stderr = driver_log.read_text()
    logger.warning("elastic cluster: node joined at iteration %d, the resident job grew at "
                   "%d, the first executor left at %d of %d; exit code %d", joined_at,
                   grown_at, left_at, n_iter, job.returncode)
    assert job.returncode == 0, stderr[-5000:]
    assert 3 <= joined_at < grown_at < left_at < n_iter, (joined_at, grown_at, left_at)
    # resident tasks moved with the executors instead of being given up for the fit
    passes = re.search(r"passes over the data: (\d+) by resident tasks, (\d+) as Spark jobs",
                       stderr)
    assert passes is not None and "resident tasks given up" not in stderr, stderr[-5000:]
    logger.warning("elastic cluster: %s", passes.group(0))
    assert int(passes.group(1)) >= n_iter // 2
    _assert_equals_undisturbed(spark, values, tmp_path, len(x), n_iter)
    labelled = pq.read_table(str(tmp_path / "labelled")).to_pandas().sort_values("event_id")
    # clusters agree with the generating labels up to a permutation
    agreement = max(np.mean(labelled["prediction"].to_numpy() == perm[labels])
                    for perm in map(np.array, itertools.permutations(range(4))))
    assert agreement > 0.95
    return conf, archive


# Runs last in this module: it kills one of the cluster's two workers.
def test_fit_survives_a_lost_worker(cluster, spark, tmp_path) -> None:
    cluster.wait_for_workers(2)  # one is lost, the other finishes the job
    x, *_ = make_mixture(n=40_000, seed=37, k=4)
    data = tmp_path / "events"
    _write_events(data, x)
    checkpoint = tmp_path / "state" / "em.json"
    values = job_sections(tmp_path, str(data), {"k": 4, "seed": 9, "max_iter": 25},
                          checkpoint={"path": str(checkpoint)})
    conf = write_job_config(str(tmp_path / "job.toml"), values)
    archive = build_archive(str(tmp_path / "dist" / "spark_gmm.zip"))
    # Resident tasks run an iteration of these rows in ~10 ms on this cluster: a pause in
    # every checkpoint write keeps the fit running long enough to lose a worker mid-way.
    job = subprocess.Popen(_submit_command(cluster.master, archive, *_PAUSED_FIT,
                                           "--config", conf),
                           env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    submitted = time.monotonic()
    deadline = time.monotonic() + 300
    while (checkpointed_iterations(checkpoint) < 3 and job.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.05)
    killed_at = checkpointed_iterations(checkpoint)
    logger.warning("lost worker: iteration %d reached %.1f s after submission", killed_at,
                   time.monotonic() - submitted)
    victim = cluster.workers[1]
    os.killpg(victim.pid, signal.SIGKILL)  # the worker, its executor and Python workers
    victim.wait()
    killed = time.monotonic()
    stdout, stderr = job.communicate(timeout=600)  # the Python driver's logging: stdout
    logger.warning("lost worker: killed at iteration %d; the job ended %.1f s later with "
                   "exit code %d", killed_at, time.monotonic() - killed, job.returncode)
    assert 3 <= killed_at < 25, f"the worker was not killed mid-fit ({killed_at} iterations)"
    if job.returncode != 0:
        # the declared fallback: exit code 1, then the same job resumes from its checkpoint
        assert job.returncode == 1, stderr[-5000:]
        assert checkpointed_iterations(checkpoint) >= killed_at
        retry = _submit(cluster.master, archive, "fit_gmm.py", "--config", conf)
        assert retry.returncode == 0, retry.stderr[-5000:]
        assert "resuming from checkpoint" in retry.stderr, retry.stderr[-5000:]
    else:
        assert "Lost executor" in stderr, stderr[-5000:]  # the kill reached the running job
        # resident tasks went on, on the executor left: moved at a pass boundary, or, when
        # the kill came during a pass, after that pass ran as a Spark job
        assert ("executors left the application: this fit's resident job shrinks" in stdout
                or "were lost with their executor" in stdout), stdout[-5000:]
        assert "resident tasks given up" not in stdout, stdout[-5000:]
        logger.warning("lost worker: %s", "; ".join(
            line.split(": ", 1)[-1][:200] for line in stdout.splitlines()
            if "resident" in line or "passes over the data" in line))

    # the same fit, undisturbed, in the local session (the fit is partition-invariant)
    reference = run_fit(spark, build_config({
        **values, "model": {**values["model"], "path": str(tmp_path / "reference")},
        "output": {"path": str(tmp_path / "reference_labelled")}, "checkpoint": {}}))
    with open(tmp_path / "model" / "diagnostics.json") as handle:
        diagnostics = json.load(handle)
    assert diagnostics["num_iter"] == reference["num_iter"] == 25
    np.testing.assert_allclose(diagnostics["log_likelihood_history"],
                               reference["log_likelihood_history"], rtol=1e-8)
    for key in ("means", "covariances"):
        np.testing.assert_allclose(diagnostics["original_units"][key],
                                   reference["original_units"][key], rtol=1e-8, atol=1e-10)
    labelled = pq.read_table(str(tmp_path / "labelled"))
    assert labelled.num_rows == len(x)
