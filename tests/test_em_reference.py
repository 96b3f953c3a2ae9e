"""The EM loop on one machine against scikit-learn and known generating parameters."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from spark_gmm.kernels import COVARIANCE_TYPES
from tests.helpers import initial_parameters, local_fit, make_mixture, precisions_of


def sklearn_fit(x, init, max_iter, tol, reg_covar=1e-6):
    model = SkGaussianMixture(
        n_components=init.n_components, covariance_type=init.covariance_type, tol=tol,
        max_iter=max_iter, reg_covar=reg_covar, weights_init=init.weights,
        means_init=init.means, precisions_init=precisions_of(init),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x)
    return model


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_matches_sklearn_from_same_start(covariance_type: str) -> None:
    x, *_ = make_mixture(n=3000, seed=3, k=3)
    init = initial_parameters(x, 3, covariance_type, seed=4)
    ours = local_fit(x, init, max_iter=40, tol=0.0)
    ref = sklearn_fit(x, init, max_iter=40, tol=0.0)
    assert ours.n_iter == ref.n_iter_ == 40
    np.testing.assert_allclose(ours.params.weights, ref.weights_, rtol=1e-6)
    np.testing.assert_allclose(ours.params.means, ref.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.params.covariances, ref.covariances_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.history[-1], ref.lower_bound_, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_converges_like_sklearn_with_tol(covariance_type: str) -> None:
    x, *_ = make_mixture(n=2000, seed=8, k=3)
    init = initial_parameters(x, 3, covariance_type, seed=1)
    ours = local_fit(x, init, max_iter=500, tol=1e-4)
    ref = sklearn_fit(x, init, max_iter=500, tol=1e-4)
    assert ours.converged and ref.converged_
    assert ours.n_iter == ref.n_iter_
    np.testing.assert_allclose(ours.params.means, ref.means_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_never_decreases(covariance_type: str) -> None:
    x, *_ = make_mixture(n=1500, seed=9, k=4)
    run = local_fit(x, initial_parameters(x, 4, covariance_type, seed=0), max_iter=60, tol=0.0)
    history = np.array(run.history)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))


def test_recovers_generating_parameters() -> None:
    x, _, means, weights = make_mixture(n=20000, seed=12, k=3)
    run = local_fit(x, initial_parameters(x, 3, "full", seed=5), max_iter=300, tol=1e-8)
    order = [int(np.argmin(np.linalg.norm(run.params.means - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(run.params.means[order], means, atol=0.08)
    np.testing.assert_allclose(run.params.weights[order], weights, atol=0.015)


def test_classic_one_dimensional_example() -> None:
    # Three components: means -0.5, -0.1, 0.2 and standard deviations 0.2, 0.07, 0.13.
    rng = np.random.default_rng(2024)
    true_means = np.array([-0.5, -0.1, 0.2])
    true_sd = np.array([0.2, 0.07, 0.13])
    sizes = [30000, 30000, 30000]
    x = np.concatenate([rng.normal(m, s, n) for m, s, n in zip(true_means, true_sd, sizes)])
    x = x[:, None]
    from spark_gmm.kernels import GaussianParameters
    init = GaussianParameters.from_covariances(
        np.full(3, 1 / 3), [[-0.6], [0.0], [0.3]], np.full((3, 1, 1), x.var()), "full")
    run = local_fit(x, init, max_iter=2000, tol=1e-10)
    order = np.argsort(run.params.means[:, 0])
    np.testing.assert_allclose(run.params.means[order, 0], true_means, atol=0.02)
    np.testing.assert_allclose(np.sqrt(run.params.covariances[order, 0, 0]), true_sd, atol=0.02)
    np.testing.assert_allclose(run.params.weights[order], 1 / 3, atol=0.05)


def test_integer_weights_equal_duplicated_rows() -> None:
    x, *_ = make_mixture(n=600, seed=4)
    counts = np.random.default_rng(0).integers(0, 4, size=600)
    init = initial_parameters(x, 3, "full", seed=3)
    weighted = local_fit(x, init, max_iter=30, tol=0.0, weights=counts.astype(float))
    duplicated = local_fit(np.repeat(x, counts, axis=0), init, max_iter=30, tol=0.0)
    np.testing.assert_allclose(weighted.params.means, duplicated.params.means, rtol=1e-8)
    np.testing.assert_allclose(weighted.params.covariances, duplicated.params.covariances,
                               rtol=1e-8)
