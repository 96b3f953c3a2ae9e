"""The prior's hyperparameters: mclust's defaults from the rows, and set values checked."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm.errors import InvalidInputError
from spark_gmm.fit.prior import PriorSettings, resolve_priors, scale_matrix
from spark_gmm.kernels import COVARIANCE_TYPES, FeatureMoments, block_statistics

RNG = np.random.default_rng(5)
X = RNG.normal(size=(60, 3)) @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]]) + 7
CENTER = np.array([7.0, 6.0, 5.0])


def _resolve(settings: PriorSettings | None, k: int, covariance_type: str):
    passes = []

    def statistics(models):
        passes.append(models)
        return block_statistics(X, None, models, CENTER)

    [prior] = resolve_priors([settings], [k], [covariance_type], FeatureMoments.of(X),
                             X.shape[0], CENTER, statistics)
    return prior, len(passes)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_defaults_are_mclusts(covariance_type: str) -> None:
    k, d = 3, 3
    prior, passes = _resolve(PriorSettings(), k, covariance_type)
    # R's cov(data) / G^(2/d); its diagonal for diag, its mean diagonal for spherical.
    cov = np.cov(X.T) / k ** (2 / d)
    expected = {"full": cov, "tied": cov, "diag": np.diag(cov),
                "spherical": np.trace(cov) / d}[covariance_type]
    np.testing.assert_allclose(prior.scale, expected, rtol=1e-12)
    np.testing.assert_allclose(prior.mean, X.mean(axis=0) - CENTER, rtol=1e-12, atol=1e-12)
    assert prior.dof == d + 2 and prior.shrinkage == 0.01
    # Only the matrix types need the covariance pass.
    assert passes == (1 if covariance_type in ("full", "tied") else 0)


def test_set_values_are_used_and_need_no_pass() -> None:
    settings = PriorSettings.of("conjugate", [1, 2, 3], 0.5, 9, [4.0])
    prior, passes = _resolve(settings, 2, "full")
    assert passes == 0
    np.testing.assert_array_equal(prior.mean, np.array([1, 2, 3]) - CENTER)
    np.testing.assert_array_equal(prior.scale, np.eye(3) * 4.0)
    assert (prior.shrinkage, prior.dof) == (0.5, 9.0)
    assert PriorSettings.of("none", None, 0.01, None, None) is None
    assert _resolve(None, 2, "full") == (None, 0)


def test_scale_matrix_takes_one_d_or_d_squared_values() -> None:
    np.testing.assert_array_equal(scale_matrix([2.0], 2), [[2.0, 0.0], [0.0, 2.0]])
    np.testing.assert_array_equal(scale_matrix([2.0, 3.0], 2), [[2.0, 0.0], [0.0, 3.0]])
    np.testing.assert_array_equal(scale_matrix([2.0, 1.0, 1.0, 3.0], 2), [[2, 1], [1, 3]])
    with pytest.raises(InvalidInputError, match="priorScale has 3 values; with 2 features"):
        scale_matrix([1.0, 2.0, 3.0], 2)


@pytest.mark.parametrize("settings, message", [
    (PriorSettings(mean=(1.0, 2.0)), "priorMean has 2 values; the data have 3 features"),
    (PriorSettings(dof=2.0), "priorDegreesOfFreedom must be > D − 1 = 2"),
    (PriorSettings(scale=(1.0, -1.0, 1.0)), "the prior scale is not positive definite"),
    (PriorSettings(scale=(1.0, 2.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
     "the prior scale is not positive definite"),
])
def test_bad_hyperparameters_name_the_param(settings: PriorSettings, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _resolve(settings, 2, "full")
    # ν ≤ D − 1 is fine for the inverse-gamma priors of diag and spherical.
    _resolve(PriorSettings(dof=0.5), 2, "diag")
