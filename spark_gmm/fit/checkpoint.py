"""EM state checkpoints: written atomically after every iteration, read back to resume.

A checkpoint is one JSON file (never a pickle) holding, for every restart, the current
parameters, the log-likelihood (or log posterior) history, the log priors and the
convergence flag, plus the data centre, a fingerprint of the fit's parameters (k, covariance
type, seed, the prior, ...) and one of its data (row
count, weight sum, the feature column and type, every feature's mean and variance, all of
which the first pass computes anyway). Other parameters are an error; other data (a
scheduled job rerun on a new sample of the same size) make the fit start afresh with a
warning naming what differs. Never is a checkpoint silently used for another fit.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import CheckpointMismatchError
from ..kernels import GaussianParameters
from ..runtime.files import AtomicFile
from .em import EMRun

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2
# Feature means and variances merge in partition order: equal data agree to rounding.
_MOMENT_RTOL = 1e-9


def _params_to_json(p: GaussianParameters) -> dict[str, Any]:
    noise = ({} if p.noise_log_volume is None else
             {"noiseWeight": p.noise_weight, "noiseLogVolume": p.noise_log_volume})
    return {"covarianceType": p.covariance_type, "weights": p.weights.tolist(),
            "means": p.means.tolist(), "covariances": p.covariances.tolist()} | noise


def _params_from_json(d: dict[str, Any]) -> GaussianParameters:
    return GaussianParameters.from_covariances(np.array(d["weights"]), np.array(d["means"]),
                                               np.array(d["covariances"]), d["covarianceType"],
                                               d.get("noiseWeight", 0.0),
                                               d.get("noiseLogVolume"))


def write_checkpoint(path: str, fingerprint: dict[str, Any], center: np.ndarray,
                     runs: Sequence[EMRun], data: dict[str, Any] | None = None,
                     before_replace: Callable[[], None] | None = None) -> None:
    """Atomically and durably replace the checkpoint at ``path``.

    A crash at any moment, of the process or of the machine, leaves either the previous
    checkpoint or the new one, never a mix (:class:`~spark_gmm.runtime.files.AtomicFile`).
    ``before_replace`` runs once the new state is written and synced, before it replaces
    the previous one.
    """
    state = {
        "version": CHECKPOINT_VERSION,
        "fingerprint": fingerprint,
        "data": data or {},
        "center": center.tolist(),
        "runs": [
            {"params": _params_to_json(r.params), "history": r.history,
             "iterationSeconds": r.iteration_seconds, "converged": r.converged,
             "logPriors": r.log_priors}
            for r in runs
        ],
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with AtomicFile(path, durable=True, text=True) as checkpoint:
        json.dump(state, checkpoint.stream)
        checkpoint.commit(before_replace=before_replace)


def data_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two data fingerprints, in words (empty: the same data)."""
    found = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a:
            x, y = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
            scale = np.maximum(np.abs(x), np.abs(y))
            relative = np.abs(x - y) / np.where(scale > 0, scale, 1.0)
            if relative.max() > _MOMENT_RTOL:
                worst = int(relative.argmax())
                found.append(f"{key} differ (feature {worst}: {x[worst]:.6g} then, "
                             f"{y[worst]:.6g} now)")
        elif isinstance(a, float) and isinstance(b, float):
            if abs(a - b) > _MOMENT_RTOL * max(abs(a), abs(b)):
                found.append(f"{key} {a:.6g} then, {b:.6g} now")
        elif a != b:
            found.append(f"{key} {a!r} then, {b!r} now")
    return found


def read_checkpoint(path: str, fingerprint: dict[str, Any],
                    data: dict[str, Any] | None = None
                    ) -> tuple[np.ndarray, list[EMRun]] | None:
    """The centre and runs saved at ``path``, or None when there is no checkpoint to resume:
    none yet, or one of other data (``data``: logged as a warning naming what differs; the
    fit starts afresh and overwrites it), or of an older format.

    Raises
    ------
    CheckpointMismatchError
        The checkpoint was written by a fit with other parameters (``fingerprint``).
    """
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        state = json.load(handle)
    if state.get("version") != CHECKPOINT_VERSION:
        logger.warning("ignoring the checkpoint %s: written in format %r by another version "
                       "(this one writes %d); the fit starts afresh", path,
                       state.get("version"), CHECKPOINT_VERSION)
        return None
    if state.get("fingerprint") != fingerprint:
        raise CheckpointMismatchError(
            f"the checkpoint {path!r} was written by a different fit "
            f"({state.get('fingerprint')} vs {fingerprint}); delete it or point "
            "checkpointPath elsewhere"
        )
    differences = data_differences(state.get("data", {}), data or {})
    if differences:
        logger.warning("ignoring the checkpoint %s: it was written for other data (%s); the "
                       "fit starts afresh", path, "; ".join(differences))
        return None
    runs = [
        EMRun(_params_from_json(r["params"]), list(r["history"]),
              list(r["iterationSeconds"]), bool(r["converged"]),
              log_priors=list(r.get("logPriors", [])))
        for r in state["runs"]
    ]
    logger.info("resuming from checkpoint %s at iteration %d", path,
                max(r.n_iter for r in runs))
    return np.array(state["center"]), runs


def remove_checkpoint(path: str) -> None:
    """Delete the checkpoint of a completed fit (a rerun then starts afresh)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
