"""A fit job killed with SIGKILL mid-fit resumes from its checkpoint to the same model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm import GaussianMixtureModel
from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from tests.helpers import checkpointed_iterations, job_sections, make_mixture, write_job_config
from tests.job_hooks import entry_command

pytestmark = pytest.mark.slow


def _job(tmp_path, data: str, name: str, checkpoint: str | None = None) -> dict:
    return job_sections(tmp_path / name, data, {"k": 4, "max_iter": 24, "seed": 5},
                        checkpoint={"path": checkpoint} if checkpoint else {},
                        spark={"master": "local[2]"})


def _run(config: str, slowly: bool = False, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    # Resident tasks run an iteration of these 3,000 rows in milliseconds: a pause in every
    # checkpoint write keeps the fit running long enough to be killed mid-way.
    command = (entry_command("--checkpoint-pause", "0.1") if slowly
               else [sys.executable, "-m", "spark_gmm.cli"])
    return subprocess.Popen([*command, "fit", "--config", config], env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def test_killed_fit_resumes_to_the_same_model(spark, tmp_path) -> None:
    x, *_ = make_mixture(n=3000, seed=17, k=4)
    data = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}), data)
    checkpoint = str(tmp_path / "state" / "em.json")
    interrupted = write_job_config(str(tmp_path / "resumed.toml"),
                                   _job(tmp_path, data, "resumed", checkpoint))

    job = _run(interrupted, slowly=True)
    deadline = time.monotonic() + 240
    while (checkpointed_iterations(checkpoint) < 4 and job.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.05)
    killed_at = checkpointed_iterations(checkpoint)
    os.killpg(job.pid, signal.SIGKILL)  # the driver and its JVM, no chance to clean up
    job.wait()
    assert 4 <= killed_at < 24, f"the job was not killed mid-fit ({killed_at} iterations)"
    assert not os.path.exists(str(tmp_path / "resumed" / "model"))

    resumed = _run(interrupted)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "resuming from checkpoint" in output
    assert not os.path.exists(checkpoint)  # removed once the fit completed

    # the same job, uninterrupted, in this process's session (one input file: one partition)
    run_fit(spark, build_config(_job(tmp_path, data, "uninterrupted")))

    a = GaussianMixtureModel.load(str(tmp_path / "resumed" / "model" / "model"))
    b = GaussianMixtureModel.load(str(tmp_path / "uninterrupted" / "model" / "model"))
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.covariances, b.covariances)
    assert a.summary.numIter == b.summary.numIter == 24
    np.testing.assert_array_equal(a.summary.logLikelihoodHistory, b.summary.logLikelihoodHistory)


def test_a_checkpoint_of_other_data_of_the_same_size_starts_afresh(spark, tmp_path,
                                                                   caplog) -> None:
    # A scheduled job killed yesterday on sample P runs today on sample Q, same size.
    paths = {}
    for name, seed in (("p", 17), ("q", 71)):
        x, *_ = make_mixture(n=3000, seed=seed, k=4)
        paths[name] = str(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}), paths[name])
    checkpoint = str(tmp_path / "state" / "em.json")
    job = _run(write_job_config(str(tmp_path / "p.toml"),
                                _job(tmp_path, paths["p"], "p", checkpoint)), slowly=True)
    deadline = time.monotonic() + 240
    while (checkpointed_iterations(checkpoint) < 2 and job.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert 2 <= checkpointed_iterations(checkpoint) < 24, "P was not killed mid-fit"

    with caplog.at_level("WARNING", logger="spark_gmm.fit.checkpoint"):
        run_fit(spark, build_config(_job(tmp_path, paths["q"], "q", checkpoint)))
    assert "ignoring the checkpoint" in caplog.text and "featureMeans differ" in caplog.text
    assert not os.path.exists(checkpoint)  # the fit of Q completed and removed its own
    run_fit(spark, build_config(_job(tmp_path, paths["q"], "q_alone")))
    a = GaussianMixtureModel.load(str(tmp_path / "q" / "model" / "model"))
    b = GaussianMixtureModel.load(str(tmp_path / "q_alone" / "model" / "model"))
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.covariances, b.covariances)
    assert a.summary.numIter == b.summary.numIter == 24
