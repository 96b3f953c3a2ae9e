"""Checkpoint files: atomic replacement, even when the writer is killed mid-write."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from spark_gmm.errors import CheckpointMismatchError
from spark_gmm.fit.checkpoint import (
    read_checkpoint,
    write_checkpoint,
)
from spark_gmm.fit.em import EMRun
from spark_gmm.kernels import GaussianParameters

FINGERPRINT = {"k": 2, "rows": 10}


def _run(shift: float) -> EMRun:
    params = GaussianParameters.from_covariances([0.4, 0.6], [[0.0 + shift], [3.0]],
                                                 [1.0, 2.0], "spherical")
    return EMRun(params, history=[-3.0, -2.5 + shift], iteration_seconds=[0.1, 0.1])


def test_round_trip_is_exact(tmp_path) -> None:
    path = str(tmp_path / "em.json")
    assert read_checkpoint(path, FINGERPRINT) is None
    run = _run(0.1)
    write_checkpoint(path, FINGERPRINT, np.array([1e12 + 0.5]), [run])
    center, [loaded] = read_checkpoint(path, FINGERPRINT)
    assert center.tolist() == [1e12 + 0.5]
    assert loaded.history == run.history
    np.testing.assert_array_equal(loaded.params.means, run.params.means)
    np.testing.assert_array_equal(loaded.params.precisions_cholesky,
                                  run.params.precisions_cholesky)
    with pytest.raises(CheckpointMismatchError, match="different fit"):
        read_checkpoint(path, {**FINGERPRINT, "rows": 11})


DATA = {"rows": 10, "featuresColumn": "features: vector", "weightSum": 10.0,
        "featureMeans": [0.5, -2.0], "featureVariances": [1.0, 4.0]}


def test_a_checkpoint_of_other_data_is_ignored_with_a_warning_naming_it(tmp_path,
                                                                       caplog) -> None:
    path = str(tmp_path / "em.json")
    write_checkpoint(path, FINGERPRINT, np.zeros(1), [_run(0.1)], DATA)
    assert read_checkpoint(path, FINGERPRINT, DATA) is not None
    # rounding of moments merged in another order is the same data
    same = {**DATA, "featureMeans": [0.5 * (1 + 1e-12), -2.0]}
    assert read_checkpoint(path, FINGERPRINT, same) is not None
    for changed, named in (({"featureMeans": [0.5, -1.0]},
                            "featureMeans differ (feature 1: -2 then, -1 now)"),
                           ({"featureVariances": [1.0, 4.1]}, "featureVariances differ"),
                           ({"featuresColumn": "x: array<double>"}, "featuresColumn"),
                           ({"weightSum": 12.5}, "weightSum 10 then, 12.5 now")):
        caplog.clear()
        assert read_checkpoint(path, FINGERPRINT, {**DATA, **changed}) is None
        assert named in caplog.text and "starts afresh" in caplog.text


def test_a_checkpoint_of_an_older_format_is_ignored(tmp_path, caplog) -> None:
    path = tmp_path / "em.json"
    path.write_text('{"version": 1, "fingerprint": {"k": 2, "rows": 10}, "runs": []}')
    assert read_checkpoint(str(path), FINGERPRINT, DATA) is None
    assert "format 1" in caplog.text


WRITER = textwrap.dedent("""
    import sys
    import time
    import numpy as np
    from tests.fit.test_checkpoint_file import FINGERPRINT, _run
    from spark_gmm.fit.checkpoint import write_checkpoint
    write_checkpoint(sys.argv[1], FINGERPRINT, np.zeros(1), [_run(0.9)],
                     before_replace=lambda: time.sleep(30))
""")


def test_kill_during_write_keeps_the_previous_checkpoint(tmp_path) -> None:
    path = str(tmp_path / "em.json")
    write_checkpoint(path, FINGERPRINT, np.zeros(1), [_run(0.1)])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path], cwd=root)
    deadline = time.monotonic() + 60
    while not glob.glob(str(tmp_path / ".em.json.*.tmp")):  # new state written, not yet renamed
        assert writer.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    _, [survivor] = read_checkpoint(path, FINGERPRINT)
    assert survivor.history == [-3.0, -2.5 + 0.1]  # the previous state, intact and usable
