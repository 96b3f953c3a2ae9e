"""Scoring batches of rows in the executors: prediction, responsibilities, log density."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyarrow as pa

from ..kernels import GaussianParameters, e_step
from ..kernels.marginal import incomplete_rows, marginal_e_step
from ..runtime.input_checks import FeatureRows
from ..runtime.worker import prepare_python_worker

SCORE_TYPE = "prediction int, probability array<double>, log_likelihood double"
# With imputedCol: also the features with missing entries at E[x_m | x_o].
IMPUTED_SCORE_TYPE = SCORE_TYPE + ", imputed array<double>"


class HeldParameters(Protocol):
    """A broadcast of the mixture (classic sessions), or the mixture carried in the UDF's
    closure (:class:`InClosure`, on Spark Connect, which has no broadcasts)."""

    @property
    def value(self) -> GaussianParameters: ...


class InClosure:
    """The mixture itself, pickled with the scoring function."""

    def __init__(self, value: GaussianParameters) -> None:
        self.value = value


def score_features(params: HeldParameters, features: pa.Array, marginalize: bool = False,
                   impute: bool = False) -> pa.StructArray:
    """Prediction, responsibilities and log density (:data:`SCORE_TYPE`) for a batch of
    feature arrays.

    Rows that :class:`~spark_gmm.runtime.input_checks.FeatureRows` rejects (null, non-finite
    or of the wrong length) get null fields; no row is dropped. With a noise component the
    responsibilities hold K + 1 entries, the noise last, and its rows' prediction is −1.
    With ``marginalize`` rows with missing features (NaN, null elements) are scored from
    their observed features' marginal, and with ``impute`` an ``imputed`` field holds every
    valid row with its missing entries at E[x_m | x_o] (:data:`IMPUTED_SCORE_TYPE`).
    """
    prepare_python_worker()
    mixture = params.value
    d, k = mixture.n_features, mixture.n_components + mixture.has_noise
    rows = FeatureRows.of(features)
    n = len(rows)
    valid = rows.valid(d, marginalize)
    if valid.all():
        log_likelihood, probability, prediction = e_step(rows.rows(valid, d), mixture)
    else:
        # Invalid rows keep zeros under a null mask.
        prediction = np.zeros(n, dtype=np.intp)
        probability = np.zeros((n, k))
        log_likelihood = np.zeros(n)
        if valid.any():
            log_likelihood[valid], probability[valid], prediction[valid] = e_step(
                rows.rows(valid, d), mixture)
    if mixture.has_noise:
        prediction[prediction == mixture.n_components] = -1
    invalid = ~valid
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k)
    fields = [pa.array(prediction.astype(np.int32), mask=invalid),
              pa.ListArray.from_arrays(offsets, pa.array(probability.ravel()),
                                       mask=pa.array(invalid)),
              pa.array(log_likelihood, mask=invalid)]
    names = ["prediction", "probability", "log_likelihood"]
    if impute:
        imputed = np.zeros((n, d))
        if valid.any():
            imputed[valid] = imputed_rows(rows.rows(valid, d), mixture)
        fields.append(pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * d),
                                               pa.array(imputed.ravel()),
                                               mask=pa.array(invalid)))
        names.append("imputed")
    return pa.StructArray.from_arrays(fields, names=names)


def imputed_rows(x: np.ndarray, mixture: GaussianParameters) -> np.ndarray:
    """``x`` [n, D] with each missing entry (NaN) replaced by E[x_m | x_o] under
    ``mixture``; complete rows as they are."""
    incomplete = incomplete_rows(x)
    if incomplete is None:
        return x
    out = np.array(x)
    out[incomplete] = marginal_e_step(x[incomplete], mixture)[2]
    return out
