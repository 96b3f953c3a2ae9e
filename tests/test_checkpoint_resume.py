"""A fit job killed with SIGKILL mid-fit resumes from its checkpoint to the same model."""

from __future__ import annotations

import json
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
from tests.helpers import make_mixture

pytestmark = pytest.mark.slow


def _job_config(tmp_path, data: str, name: str, checkpoint: str = "") -> str:
    conf = tmp_path / f"{name}.toml"
    conf.write_text(
        f'[input]\npath = "{data}"\nfeatures = ["a", "b", "c"]\n'
        f'[model]\nk = 4\nmax_iter = 24\ntol = 0.0\ninit_mode = "random"\nseed = 5\n'
        f'path = "{tmp_path / name / "model"}"\n'
        f'[output]\npath = "{tmp_path / name / "labelled"}"\n'
        f'[checkpoint]\npath = "{checkpoint}"\n'
        '[spark]\nmaster = "local[2]"\n'
    )
    return str(conf)


def _run(config: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    return subprocess.Popen([sys.executable, "-m", "spark_gmm.cli", "fit", "--config", config],
                            env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def _iterations(checkpoint: str) -> int:
    try:
        with open(checkpoint) as handle:
            return max(len(r["history"]) for r in json.load(handle)["runs"])
    except (OSError, ValueError, KeyError):
        return 0


def test_killed_fit_resumes_to_the_same_model(spark, tmp_path) -> None:
    x, *_ = make_mixture(n=3000, seed=17, k=4)
    data = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}), data)
    checkpoint = str(tmp_path / "state" / "em.json")
    interrupted = _job_config(tmp_path, data, "resumed", checkpoint)

    job = _run(interrupted)
    deadline = time.monotonic() + 240
    while _iterations(checkpoint) < 4 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed_at = _iterations(checkpoint)
    os.killpg(job.pid, signal.SIGKILL)  # the driver and its JVM, no chance to clean up
    job.wait()
    assert 4 <= killed_at < 24, f"the job was not killed mid-fit ({killed_at} iterations)"
    assert not os.path.exists(str(tmp_path / "resumed" / "model"))

    resumed = _run(interrupted)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "resuming from checkpoint" in output
    assert not os.path.exists(checkpoint)  # removed once the fit completed

    reference = _run(_job_config(tmp_path, data, "uninterrupted"))
    output, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, output

    a = GaussianMixtureModel.load(str(tmp_path / "resumed" / "model" / "model"))
    b = GaussianMixtureModel.load(str(tmp_path / "uninterrupted" / "model" / "model"))
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.covariances, b.covariances)
    assert a.summary.numIter == b.summary.numIter == 24
    np.testing.assert_array_equal(a.summary.logLikelihoodHistory, b.summary.logLikelihoodHistory)
