"""A real Spark standalone cluster (one master, two workers on 127.0.0.1) runs the jobs
submitted with spark-submit, and is stopped by PID whatever happens."""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyspark
import pytest

from spark_gmm.etl.package import build_archive
from tests.helpers import make_mixture

pytestmark = pytest.mark.slow
ROOT = pathlib.Path(__file__).resolve().parents[1]
SPARK_HOME = pathlib.Path(pyspark.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "SPARK_HOME": str(SPARK_HOME), "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as r:
            return int(json.load(r).get("aliveworkers", 0))
    except OSError:
        return 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("cluster")
    port, ui_port = _free_port(), _free_port()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    processes: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        log = open(logs / f"{name}.log", "w")
        processes.append(subprocess.Popen([spark_class, *args], env=_env(), stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
              "--port", str(port), "--webui-port", str(ui_port))
        master = f"spark://127.0.0.1:{port}"
        for i in range(2):
            start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", master,
                  "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                  "--webui-port", str(_free_port()), "--work-dir", str(logs / f"work{i}"))
        deadline = time.monotonic() + 120
        while _alive_workers(ui_port) < 2:
            assert time.monotonic() < deadline, (logs / "master.log").read_text()[-3000:]
            assert all(p.poll() is None for p in processes), "a cluster process died"
            time.sleep(0.5)
        yield master
    finally:
        for process in processes:  # stop exactly what we started, by PID
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _submit(master: str, archive: str, job: str, *args: str) -> subprocess.CompletedProcess:
    command = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master,
               "--py-files", archive, "--conf", "spark.executor.cores=1",
               "--conf", "spark.executor.memory=512m", "--conf", "spark.cores.max=2",
               "--driver-java-options",
               f"-Dlog4j2.configurationFile={ROOT / 'conf' / 'log4j2.properties'}",
               str(ROOT / "jobs" / job), *args]
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)


def test_fit_and_score_jobs_on_a_standalone_cluster(cluster, tmp_path) -> None:
    x, labels, _, _ = make_mixture(n=4000, seed=23, k=3)
    data = tmp_path / "events"
    data.mkdir()
    for part in range(4):  # a directory of Parquet files, as a scheduler would leave it
        rows = slice(part * 1000, (part + 1) * 1000)
        pq.write_table(pa.table({"event_id": np.arange(4000)[rows], "a": x[rows, 0],
                                 "b": x[rows, 1], "c": x[rows, 2]}),
                       str(data / f"part-{part}.parquet"))
    conf = tmp_path / "job.toml"
    conf.write_text(f'[input]\npath = "{data}"\nfeatures = ["a", "b", "c"]\n'
                    f'[model]\nk = 3\nseed = 2\ntol = 1e-4\ninit_mode = "k-means++"\n'
                    f'path = "{tmp_path / "model"}"\n'
                    f'[output]\npath = "{tmp_path / "labelled"}"\n')
    archive = build_archive(str(tmp_path / "dist" / "spark_gmm.zip"))

    fit = _submit(cluster, archive, "fit_gmm.py", "--config", str(conf))
    assert fit.returncode == 0, fit.stdout[-3000:] + fit.stderr[-5000:]
    assert "rows: 4000 read, 4000 labelled" in fit.stdout
    labelled = pq.read_table(str(tmp_path / "labelled")).to_pandas().sort_values("event_id")
    assert len(labelled) == 4000
    # clusters agree with the generating labels up to a permutation
    agreement = max(np.mean(labelled["prediction"].to_numpy() == perm[labels])
                    for perm in map(np.array, itertools.permutations(range(3))))
    assert agreement > 0.95

    score = _submit(cluster, archive, "score_gmm.py", "--config", str(conf),
                    "--set", f"output.path={tmp_path / 'scored'}")
    assert score.returncode == 0, score.stderr[-5000:]
    scored = pq.read_table(str(tmp_path / "scored")).to_pandas().sort_values("event_id")
    np.testing.assert_array_equal(scored["prediction"].to_numpy(),
                                  labelled["prediction"].to_numpy())
