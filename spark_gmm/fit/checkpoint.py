"""EM state checkpoints: written atomically after every iteration, read back to resume.

A checkpoint is one JSON file (never a pickle) holding, for every restart, the current
parameters, the log-likelihood history and the convergence flag, plus the data centre and a
fingerprint of the fit (k, covariance type, row count, weight sum, ...). A checkpoint whose
fingerprint does not match the current fit is refused, never silently used.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import CheckpointMismatchError
from ..kernels import GaussianParameters
from ..runtime.files import AtomicFile
from .em import EMRun

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
# Test-only: seconds to pause between writing the temporary file and renaming it, so a test
# can kill the process in the middle of a checkpoint write.
WRITE_PAUSE_ENV = "SPARK_GMM_TEST_CHECKPOINT_WRITE_PAUSE"


def _params_to_json(p: GaussianParameters) -> dict[str, Any]:
    return {"covarianceType": p.covariance_type, "weights": p.weights.tolist(),
            "means": p.means.tolist(), "covariances": p.covariances.tolist()}


def _params_from_json(d: dict[str, Any]) -> GaussianParameters:
    return GaussianParameters.from_covariances(np.array(d["weights"]), np.array(d["means"]),
                                               np.array(d["covariances"]), d["covarianceType"])


def write_checkpoint(path: str, fingerprint: dict[str, Any], center: np.ndarray,
                     runs: Sequence[EMRun]) -> None:
    """Atomically and durably replace the checkpoint at ``path``.

    A crash at any moment, of the process or of the machine, leaves either the previous
    checkpoint or the new one, never a mix (:class:`~spark_gmm.runtime.files.AtomicFile`).
    """
    state = {
        "version": CHECKPOINT_VERSION,
        "fingerprint": fingerprint,
        "center": center.tolist(),
        "runs": [
            {"params": _params_to_json(r.params), "history": r.history,
             "iterationSeconds": r.iteration_seconds, "converged": r.converged}
            for r in runs
        ],
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with AtomicFile(path, durable=True, text=True) as checkpoint:
        json.dump(state, checkpoint.stream)
        checkpoint.commit(before_replace=_test_pause)


def _test_pause() -> None:
    pause = float(os.environ.get(WRITE_PAUSE_ENV, "0") or 0)
    if pause:
        time.sleep(pause)


def read_checkpoint(path: str, fingerprint: dict[str, Any]
                    ) -> tuple[np.ndarray, list[EMRun]] | None:
    """The centre and runs saved at ``path``, or None when there is no checkpoint yet.

    Raises
    ------
    CheckpointMismatchError
        The checkpoint was written by a fit with a different fingerprint.
    """
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        state = json.load(handle)
    if state.get("version") != CHECKPOINT_VERSION or state.get("fingerprint") != fingerprint:
        raise CheckpointMismatchError(
            f"the checkpoint {path!r} was written by a different fit "
            f"({state.get('fingerprint')} vs {fingerprint}); delete it or point "
            "checkpointPath elsewhere"
        )
    runs = [
        EMRun(_params_from_json(r["params"]), list(r["history"]),
              list(r["iterationSeconds"]), bool(r["converged"]))
        for r in state["runs"]
    ]
    logger.info("resuming from checkpoint %s at iteration %d", path,
                max(r.n_iter for r in runs))
    return np.array(state["center"]), runs
