"""The EM loop on one machine: one step against the paper's formulas, whole fits against
scikit-learn from the same start and known generating parameters, and monotonicity up to a
derived bound as a property."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.stats import multivariate_normal

from spark_gmm.fit import em
from spark_gmm.fit.em import EMRun, RunLimits, run_em
from spark_gmm.kernels import COVARIANCE_TYPES, GaussianParameters, block_statistics, m_step
from tests.helpers import (
    dense_covariances,
    initial_parameters,
    local_fit,
    make_mixture,
    mixtures,
    sklearn_fit,
)


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


def _direct_em_step(x: np.ndarray, params: GaussianParameters, reg: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The card's formulas transcribed literally with scipy densities (full covariance)."""
    k = params.n_components
    dens = np.column_stack([
        params.weights[j] * multivariate_normal(params.means[j], params.covariances[j]).pdf(x)
        for j in range(k)
    ])
    gamma = dens / dens.sum(axis=1, keepdims=True)
    nk = gamma.sum(axis=0)
    pi = nk / x.shape[0]
    mu = (gamma.T @ x) / nk[:, None]
    sigma = np.empty((k, x.shape[1], x.shape[1]))
    for j in range(k):
        diff = x - mu[j]
        sigma[j] = (gamma[:, j, None] * diff).T @ diff / nk[j] + reg * np.eye(x.shape[1])
    return pi, mu, sigma


def test_one_em_iteration_matches_direct_formulas() -> None:
    x, *_ = make_mixture(n=800, seed=5)
    params = initial_parameters(x, 3, "full", seed=2)
    [stats] = block_statistics(x, None, [params])
    new, collapsed = m_step(stats, "full", 1e-6)
    pi, mu, sigma = _direct_em_step(x, params, 1e-6)
    assert collapsed == []
    np.testing.assert_allclose(new.weights, pi, rtol=1e-10)
    np.testing.assert_allclose(new.means, mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new.covariances, sigma, rtol=1e-9, atol=1e-12)
    dens = sum(params.weights[j] * multivariate_normal(params.means[j], params.covariances[j])
               .pdf(x) for j in range(3))
    np.testing.assert_allclose(stats.log_likelihood, np.log(dens).sum(), rtol=1e-12)


# Steps of EM checked against the bound below, and those left out because a component
# collapsed and was re-seeded in the M-step before them (a restart of that component, not an
# EM step).
_STEPS = {"checked": 0, "after_a_reseed": 0, "unbounded": 0}


def _loss_bound(x: np.ndarray, params: GaussianParameters, reg: float) -> float:
    """How far, per row, the regularised M-step from ``params`` may lower the log-likelihood.

    EM's inequality: L(θ') − L(θ) ≥ Q(θ'|θ) − Q(θ|θ), and the unregularised M-step θ* maximises
    Q(·|θ), so Q(θ*|θ) ≥ Q(θ|θ). Weights and means are θ*'s; each covariance is the maximiser
    S plus ``reg`` I. For one covariance with eigenvalues λ_i of S that costs, in Q,
    ½ N (log det(S + rI) − log det S + tr((S + rI)⁻¹ S) − D) = ½ N Σ_i f(r/λ_i),
    f(u) = log(1 + u) − u/(1 + u) ≥ 0 (N the weight the covariance serves: N_k, or N for
    tied; for spherical, the D eigenvalues are all σ²). Hence
    L(θ') − L(θ) ≥ −Σ ½ N Σ_i f(r/λ_i): the bound, computed here with scipy's densities.
    """
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    dense = dense_covariances(params)
    log_joint = np.column_stack([
        np.log(params.weights[k]) + multivariate_normal(params.means[k], dense[k]).logpdf(x)
        for k in range(params.n_components)])
    resp = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    nk = resp.sum(axis=0)
    means = (resp.T @ x) / nk[:, None]
    scatter = np.stack([(resp[:, k, None] * (x - means[k])).T @ (x - means[k]) / nk[k]
                        for k in range(params.n_components)])
    covariance_type = params.covariance_type
    if covariance_type == "tied":
        served = [(len(x), np.linalg.eigvalsh(np.einsum("k,kij->ij", nk, scatter) / len(x)))]
    elif covariance_type == "full":
        served = [(nk[k], np.linalg.eigvalsh(s)) for k, s in enumerate(scatter)]
    else:
        variances = np.diagonal(scatter, axis1=1, axis2=2)
        if covariance_type == "spherical":
            variances = np.repeat(variances.mean(axis=1, keepdims=True), x.shape[1], axis=1)
        served = list(zip(nk, variances))
    total = 0.0
    for weight, eigenvalues in served:
        if weight > 0 and np.any(eigenvalues <= 0.0):
            return np.inf  # a singular S: Q has no maximum, nothing bounds the step
        u = reg / eigenvalues
        total += 0.5 * weight * float(np.sum(np.log1p(u) - u / (1.0 + u)))
    return total / len(x)


@settings(max_examples=40, deadline=None)
@given(mixtures())
def test_em_is_monotone_up_to_the_regularisation_bound(case) -> None:
    x, params = case
    scale = float(np.sqrt(np.mean(np.var(x, axis=0)))) or 1.0
    reg = 1e-6 * scale**2
    run = EMRun(params)
    collapses: list[int] = []  # collapsed components so far, after each iteration's M-step
    visited = [params]  # θ_i: history[i] is the mean log-likelihood at θ_i
    run_em([run], lambda models: block_statistics(x, None, models), reg, 15, 0.0,
           on_iteration=lambda _, runs: (collapses.append(runs[0].collapsed_events),
                                         visited.append(runs[0].params)))
    history = np.array(run.history)
    assert np.all(np.isfinite(history))
    for name in ("weights", "means", "covariances"):
        assert np.all(np.isfinite(getattr(run.params, name)))
    np.testing.assert_allclose(run.params.weights.sum(), 1.0, rtol=1e-12)
    # history[i + 1] follows the M-step of iteration i: an EM step unless it re-seeded.
    reseeded = np.diff([0, *collapses])[: len(history) - 1] > 0
    for i, step in enumerate(np.diff(history)):
        bound = np.inf if reseeded[i] else _loss_bound(x, visited[i], reg)
        if reseeded[i] or not np.isfinite(bound):
            _STEPS["after_a_reseed" if reseeded[i] else "unbounded"] += 1
            continue
        _STEPS["checked"] += 1
        rounding = 1e-11 * max(1.0, abs(history[i + 1]))
        assert step >= -bound - rounding, (i, step, bound)


def teardown_module() -> None:
    # The property above must not pass by leaving most steps out: bound the share skipped.
    total = sum(_STEPS.values())
    if total:
        assert _STEPS["after_a_reseed"] + _STEPS["unbounded"] <= 0.15 * total, _STEPS


def test_the_log_names_each_run_truly_iterations_at_debug(caplog, monkeypatch) -> None:
    # Run 0 stops after 2 iterations; iterations 3 to 5 are run 1's alone, and are logged so.
    x, *_ = make_mixture(n=600, seed=4)
    center = x.mean(axis=0)
    runs = [EMRun(initial_parameters(x, 3, "full", seed=seed).shifted(-center),
                  limits=RunLimits(1e-6, iterations, 0.0))
            for seed, iterations in ((1, 2), (2, 5))]
    monkeypatch.setattr(em, "PROGRESS_SECONDS", 0.0)  # a progress line after every pass
    with caplog.at_level(logging.DEBUG, logger="spark_gmm.fit.em"):
        run_em(runs, lambda models: block_statistics(x, None, models, center), 1e-6, 100, 0.0)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert [m.split(":")[0] for m in debug] == [
        "EM iteration 1 (run 0 of 2)", "EM iteration 1 (run 1 of 2)",
        "EM iteration 2 (run 0 of 2)", "EM iteration 2 (run 1 of 2)",
        "EM iteration 3 (run 1 of 2)", "EM iteration 4 (run 1 of 2)",
        "EM iteration 5 (run 1 of 2)"]
    ends = [m for m in info if m.startswith("EM run")]
    assert [m.split(", mean")[0] for m in ends] == [
        "EM run 0 of 2: stopped at maxIter after 2 iterations",
        "EM run 1 of 2: stopped at maxIter after 5 iterations"]
    assert f"{runs[1].history[-1]:.8f}" in ends[1]
    progress = [m for m in info if m.startswith("EM: ")]
    assert progress[0].startswith("EM: iteration 1, 2 of 2 runs still running")
    assert progress[2].startswith("EM: iteration 3, 1 of 2 runs still running")
    assert len(progress) == 5 and not any("EM iteration" in m for m in info)
