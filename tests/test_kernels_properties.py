"""Property-based checks of the numeric kernels with random valid parameters and data."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spark_gmm.fit.em import EMRun, run_em
from spark_gmm.kernels import COVARIANCE_TYPES, GaussianParameters, block_statistics
from spark_gmm.kernels.exact import log_responsibilities


@st.composite
def mixtures(draw):
    covariance_type = draw(st.sampled_from(COVARIANCE_TYPES))
    k = draw(st.integers(1, 4))
    d = draw(st.integers(1, 5))
    n = draw(st.integers(k * (d + 1) + 1, 80))  # enough rows for non-singular scatters
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * scale + rng.normal(size=d) * scale * 10
    means = x[rng.choice(n, k, replace=False)]
    variances = rng.uniform(0.2, 2.0, size=(k, d)) * scale**2
    cov = {  # written out, not taken from the kernels' table under test
        "full": lambda: np.stack([np.diag(v) for v in variances]),
        "tied": lambda: np.diag(variances[0]),
        "diag": lambda: variances,
        "spherical": lambda: variances.mean(axis=1),
    }[covariance_type]()
    weights = rng.dirichlet(np.ones(k))
    return x, GaussianParameters.from_covariances(weights, means, cov, covariance_type)


@settings(max_examples=60, deadline=None)
@given(mixtures())
def test_responsibilities_are_distributions(case) -> None:
    x, params = case
    log_likelihood, log_resp = log_responsibilities(x, params)
    resp = np.exp(log_resp)
    assert np.all(np.isfinite(log_likelihood)) and np.all(np.isfinite(log_resp))
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-10)


# Steps of EM checked against the bound below, and those left out because a component
# collapsed and was re-seeded in the M-step before them (a restart of that component, not an
# EM step).
_STEPS = {"checked": 0, "after_a_reseed": 0, "unbounded": 0}


def _dense(params: GaussianParameters) -> np.ndarray:
    k, d = params.n_components, params.n_features
    c = params.covariances
    return {"full": lambda: c, "tied": lambda: np.stack([c] * k),
            "diag": lambda: np.stack([np.diag(v) for v in c]),
            "spherical": lambda: np.stack([np.eye(d) * v for v in c])}[params.covariance_type]()


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

    dense = _dense(params)
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
