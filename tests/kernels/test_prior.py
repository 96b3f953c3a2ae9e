"""MAP-EM's M-step and log prior against references written here: a row-by-row EM
iteration with the posterior modes of docs/bayesian.md, and scipy's densities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from spark_gmm.fit.em import EMRun, RunLimits, run_em
from spark_gmm.kernels import (
    COVARIANCE_TYPES,
    ConjugatePrior,
    GaussianParameters,
    block_statistics,
    log_prior,
    m_step,
)
from tests.helpers import (
    dense_covariances,
    make_mixture,
    map_reference_iteration,
    map_reference_log_prior,
    prior_scale_of,
    random_parameters,
)

KAPPA, NU = 0.01, 6.0


def _prior(x: np.ndarray, covariance_type: str, k: int) -> ConjugatePrior:
    d = x.shape[1]
    matrix = np.cov(x.T) / k ** (2.0 / d)
    return ConjugatePrior(x.mean(axis=0) + 0.3, KAPPA, NU, prior_scale_of(covariance_type, matrix))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_em_equals_the_row_by_row_reference_iteration_by_iteration(
        covariance_type: str) -> None:
    x, _, _, _ = make_mixture(150, seed=4, n_features=3, k=3, offset=50.0)
    k = 3
    init = random_parameters(covariance_type, k=k, d=3, seed=5).shifted(x.mean(axis=0))
    prior = _prior(x, covariance_type, k)
    center = x.mean(axis=0)
    run = EMRun(init.shifted(-center), limits=RunLimits(0.0, 3, 0.0, prior.shifted(-center)))
    run_em([run], lambda models: block_statistics(x, None, models, center), 0.0, 3, 0.0)

    weights, means, dense = init.weights, init.means, dense_covariances(init)
    expected_history = []
    for _ in range(3):
        log_prior_then = map_reference_log_prior(covariance_type, means, dense, prior)
        weights, means, cov, ll = map_reference_iteration(covariance_type, x, weights, means,
                                                       dense, prior)
        expected_history.append((ll + log_prior_then) / x.shape[0])
        dense = dense_covariances(GaussianParameters.from_covariances(
            weights, means, cov, covariance_type))
    fitted = run.params.shifted(center)
    np.testing.assert_allclose(fitted.weights, weights, rtol=1e-9, atol=0)
    np.testing.assert_allclose(fitted.means, means, rtol=1e-9, atol=0)
    np.testing.assert_allclose(fitted.covariances, cov, rtol=1e-9, atol=0)
    np.testing.assert_allclose(run.history, expected_history, rtol=1e-9, atol=0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_prior_equals_scipys_densities(covariance_type: str) -> None:
    params = random_parameters(covariance_type, k=3, d=4, seed=8)
    rng = np.random.default_rng(9)
    a = rng.normal(size=(4, 4))
    prior = ConjugatePrior(rng.normal(size=4), 0.7, 7.5,
                           prior_scale_of(covariance_type, a @ a.T + np.eye(4)))
    expected = map_reference_log_prior(covariance_type, params.means, dense_covariances(params),
                                    prior)
    assert log_prior(params, prior) == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_m_step_is_the_mode_of_the_log_posterior(covariance_type: str) -> None:
    # With one component the E-step is exact (γ = 1), so the M-step's parameters maximise
    # log-likelihood + log prior (scipy's): every small move of a mean or a covariance
    # lowers it.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 3)) @ np.diag([1.0, 2.0, 0.5]) + 4.0
    prior = _prior(x, covariance_type, 1)
    start = random_parameters(covariance_type, k=1, d=3, seed=2)
    [stats] = block_statistics(x, None, [start])
    mode, _ = m_step(stats, covariance_type, 0.0, prior)

    def log_posterior(means: np.ndarray, cov: np.ndarray) -> float:
        dense = dense_covariances(GaussianParameters.from_covariances(
            np.ones(1), means, cov, covariance_type))
        return (sps.multivariate_normal(means[0], dense[0]).logpdf(x).sum()
                + map_reference_log_prior(covariance_type, means, dense, prior))

    best = log_posterior(mode.means, mode.covariances)
    for step in range(20):
        means = mode.means + rng.normal(size=mode.means.shape) * 1e-3
        cov = mode.covariances.copy()
        if cov.ndim >= 2 and cov.shape[-1] == cov.shape[-2]:  # symmetric moves of a matrix
            e = rng.normal(size=cov.shape) * 1e-3
            cov = cov + (e + np.swapaxes(e, -1, -2)) / 2
        else:
            cov = cov * (1 + rng.normal(size=cov.shape) * 1e-3)
        assert log_posterior(means if step % 2 else mode.means, cov) < best
        assert log_posterior(means, mode.covariances) < best


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_log_posterior_never_decreases(covariance_type: str) -> None:
    x, _, _, _ = make_mixture(400, seed=11, n_features=3, k=4)
    init = random_parameters(covariance_type, k=4, d=3, seed=12).shifted(x.mean(axis=0))
    run = EMRun(init, limits=RunLimits(0.0, 60, 0.0, _prior(x, covariance_type, 4)))
    run_em([run], lambda models: block_statistics(x, None, models), 0.0, 60, 0.0)
    history = np.array(run.history)
    assert len(history) == 60
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:]))
    assert history[-1] > history[0]


def test_a_component_without_rows_takes_the_priors_mode() -> None:
    x = np.random.default_rng(0).normal(size=(50, 2))
    far = GaussianParameters.from_covariances(np.array([0.5, 0.5]), np.array([[0.0, 0.0],
                                              [1e4, 1e4]]), np.stack([np.eye(2)] * 2), "full")
    prior = ConjugatePrior(np.array([1.0, -1.0]), KAPPA, 5.0, np.eye(2) * 2.0)
    [stats] = block_statistics(x, None, [far])
    assert stats.resp_sum[1] == 0.0
    params, reseeded = m_step(stats, "full", 0.0, prior)
    assert reseeded == []
    np.testing.assert_allclose(params.means[1], prior.mean)
    np.testing.assert_allclose(params.covariances[1], np.eye(2) * 2.0 / (5.0 + 2 + 2))
    assert params.weights[1] == 0.0
