"""Shared test data and reference helpers (no pyspark here)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.special import logsumexp

from spark_gmm.fit.em import EMRun, run_em
from spark_gmm.kernels import (
    COVARIANCE_TYPES,
    ConjugatePrior,
    GaussianParameters,
    block_statistics,
    covariance_of,
)


def make_mixture(
    n: int = 2000, seed: int = 0, offset: float = 0.0, n_features: int = 3, k: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows from a known mixture: (x, labels, true_means, true_weights)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=6.0, size=(k, n_features))
    weights = np.linspace(1.0, 2.0, k)
    weights /= weights.sum()
    labels = rng.choice(k, size=n, p=weights)
    x = np.empty((n, n_features))
    for j in range(k):
        a = rng.normal(size=(n_features, n_features)) * 0.5 + np.eye(n_features)
        rows = labels == j
        x[rows] = rng.normal(size=(rows.sum(), n_features)) @ a.T + means[j]
    return x + offset, labels, means + offset, weights


def initial_parameters(x: np.ndarray, k: int, covariance_type: str, seed: int = 1
                       ) -> GaussianParameters:
    """Classic start: equal weights, k distinct rows as means, diagonal data variance."""
    rng = np.random.default_rng(seed)
    means = x[rng.choice(x.shape[0], size=k, replace=False)]
    covariances = covariance_of(covariance_type).from_variances(x.var(axis=0), k)
    return GaussianParameters.from_covariances(np.full(k, 1.0 / k), means, covariances,
                                               covariance_type)


def random_parameters(covariance_type: str, k: int = 3, d: int = 4, seed: int = 0
                      ) -> GaussianParameters:
    """A random valid mixture of the type: means ~ N(0, 9), positive-definite covariances."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * 3
    weights = rng.dirichlet(np.ones(k))
    if covariance_type == "full":
        a = rng.normal(size=(k, d, d))
        cov = a @ a.transpose(0, 2, 1) + np.eye(d)
    elif covariance_type == "tied":
        a = rng.normal(size=(d, d))
        cov = a @ a.T + np.eye(d)
    elif covariance_type == "diag":
        cov = rng.uniform(0.5, 3.0, size=(k, d))
    else:
        cov = rng.uniform(0.5, 3.0, size=k)
    return GaussianParameters.from_covariances(weights, means, cov, covariance_type)


def dense_covariances(params: GaussianParameters) -> np.ndarray:
    """Every component's covariance as a (D, D) matrix, shape (K, D, D), written out by hand
    (not through the covariance classes under test)."""
    k, d, c = params.n_components, params.n_features, params.covariances
    return {"full": lambda: c, "tied": lambda: np.stack([c] * k),
            "diag": lambda: np.stack([np.diag(v) for v in c]),
            "spherical": lambda: np.stack([np.eye(d) * v for v in c])}[params.covariance_type]()


def sklearn_fit(x: np.ndarray, init: GaussianParameters, max_iter: int, tol: float,
                reg_covar: float = 1e-6):
    """scikit-learn's GaussianMixture fitted from exactly ``init``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    model = SkGaussianMixture(
        n_components=init.n_components, covariance_type=init.covariance_type, tol=tol,
        max_iter=max_iter, reg_covar=reg_covar, weights_init=init.weights,
        means_init=init.means, precisions_init=precisions_of(init),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x)
    return model


def local_fit(x: np.ndarray, init: GaussianParameters, max_iter: int, tol: float,
              reg_covar: float = 1e-6, weights: np.ndarray | None = None) -> EMRun:
    """EM on one machine through the same loop and kernels the Spark fit uses."""
    center = x.mean(axis=0)
    run = EMRun(init.shifted(-center))
    run_em([run], lambda models: block_statistics(x, weights, models, center),
           reg_covar, max_iter, tol)
    run.params = run.params.shifted(center)
    return run


def precisions_of(params: GaussianParameters) -> np.ndarray:
    """Precision matrices in scikit-learn's ``precisions_init`` layout."""
    if params.covariance_type == "full":
        return np.stack([np.linalg.inv(c) for c in params.covariances])
    if params.covariance_type == "tied":
        return np.linalg.inv(params.covariances)
    return 1.0 / params.covariances


def to_dataframe(spark, x: np.ndarray, partitions: int = 3, kind: str = "vector",
                 extra: dict[str, np.ndarray] | None = None):
    """A DataFrame with a ``features`` column of the given kind plus optional extra columns."""
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import (
        ArrayType,
        DoubleType,
        FloatType,
        LongType,
        StructField,
        StructType,
    )

    extra = extra or {}
    feature_type = {"vector": VectorUDT(), "array<double>": ArrayType(DoubleType()),
                    "array<float>": ArrayType(FloatType())}[kind]
    fields = [StructField("features", feature_type)] + [
        StructField(name, LongType() if values.dtype.kind == "i" else DoubleType())
        for name, values in extra.items()
    ]
    columns = [[Vectors.dense(r) for r in x] if kind == "vector" else x.tolist()]
    columns += [values.tolist() for values in extra.values()]
    return spark.createDataFrame(list(zip(*columns)), StructType(fields)).repartition(partitions)


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    return json.dumps(value)


def write_job_config(path: str, sections: dict[str, dict[str, object]]) -> str:
    """Write a job config dict as TOML (strings, numbers, lists and inline tables suffice)."""
    text = "\n".join(f"[{name}]\n" + "\n".join(f"{k} = {_toml_value(v)}" for k, v in values.items())
                     for name, values in sections.items())
    with open(path, "w") as handle:
        handle.write(text + "\n")
    return str(path)


def job_sections(directory, data: str, model: dict[str, object],
                 **sections: dict[str, object]) -> dict[str, dict[str, object]]:
    """A job config over features a, b, c of ``data``; model and labelled output in ``directory``.

    ``model`` adds to (or overrides) tol 0, random init and the model path; ``sections`` adds
    whole sections such as ``checkpoint`` or ``spark``.
    """
    return {"input": {"path": data, "features": ["a", "b", "c"]},
            "model": {"tol": 0.0, "init_mode": "random", "path": str(directory / "model"),
                      **model},
            "output": {"path": str(directory / "labelled")},
            **sections}


def checkpointed_iterations(path) -> int:
    """Iterations recorded in an EM checkpoint file (the longest run), 0 while there is none."""
    try:
        with open(path) as handle:
            return max(len(run["history"]) for run in json.load(handle)["runs"])
    except (OSError, ValueError, KeyError):
        return 0


@st.composite
def mixtures(draw):
    """A hypothesis strategy: (rows, a valid mixture of random type, size and scale)."""
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
    cov = {  # written out, not taken from the covariance classes under test
        "full": lambda: np.stack([np.diag(v) for v in variances]),
        "tied": lambda: np.diag(variances[0]),
        "diag": lambda: variances,
        "spherical": lambda: variances.mean(axis=1),
    }[covariance_type]()
    weights = rng.dirichlet(np.ones(k))
    return x, GaussianParameters.from_covariances(weights, means, cov, covariance_type)


# MAP-EM references (docs/bayesian.md), written apart from the library: scipy's densities and
# the posterior modes summed row by row.
def prior_scale_of(covariance_type: str, matrix: np.ndarray) -> np.ndarray:
    # The documented shapes: Λ, its diagonal (λ_j), its mean diagonal (ς²).
    return {"full": matrix, "tied": matrix, "diag": np.diag(matrix).copy(),
            "spherical": np.asarray(np.trace(matrix) / matrix.shape[0])}[covariance_type]


def map_reference_log_prior(kind: str, means: np.ndarray, dense: np.ndarray,
                            prior: ConjugatePrior) -> float:
    """log p(μ, Σ) from scipy: N(μ_k; μ_P, Σ_k/κ) and IW(ν, Λ), or IG(ν/2, λ/2) per
    variance."""
    k, d = means.shape
    total = sum(sps.multivariate_normal(prior.mean, dense[j] / prior.shrinkage).logpdf(means[j])
                for j in range(k))
    if kind == "full":
        total += sum(sps.invwishart(prior.dof, prior.scale).logpdf(dense[j]) for j in range(k))
    elif kind == "tied":
        total += sps.invwishart(prior.dof, prior.scale).logpdf(dense[0])
    elif kind == "diag":
        for j in range(k):
            total += sum(sps.invgamma(prior.dof / 2, scale=prior.scale[f] / 2).logpdf(
                dense[j, f, f]) for f in range(d))
    else:
        total += sum(sps.invgamma(prior.dof / 2, scale=float(prior.scale) / 2).logpdf(
            dense[j, 0, 0]) for j in range(k))
    return float(total)


def map_reference_iteration(kind: str, x: np.ndarray, weights: np.ndarray,
                            means: np.ndarray, dense: np.ndarray, prior: ConjugatePrior
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One MAP-EM iteration, sums row by row: (weights, means, covariances, log-likelihood
    of the parameters given)."""
    n, d = x.shape
    k = len(weights)
    log_p = np.column_stack([np.log(weights[j]) + sps.multivariate_normal(
        means[j], dense[j]).logpdf(x) for j in range(k)])
    row_ll = logsumexp(log_p, axis=1)
    resp = np.exp(log_p - row_ll[:, None])
    nk, sums = np.zeros(k), np.zeros((k, d))
    for i in range(n):
        for j in range(k):
            nk[j] += resp[i, j]
            sums[j] += resp[i, j] * x[i]
    xbar = sums / nk[:, None]
    scatter = np.zeros((k, d, d))
    for i in range(n):
        for j in range(k):
            diff = x[i] - xbar[j]
            scatter[j] += resp[i, j] * np.outer(diff, diff)
    kappa, nu, lam = prior.shrinkage, prior.dof, prior.scale
    for j in range(k):  # B_k = W_k + κN_k/(κ+N_k) (x̄_k − μ_P)(x̄_k − μ_P)ᵀ
        gap = xbar[j] - prior.mean
        scatter[j] += kappa * nk[j] / (kappa + nk[j]) * np.outer(gap, gap)
    new_means = (nk[:, None] * xbar + kappa * prior.mean) / (nk[:, None] + kappa)
    if kind == "full":
        cov = np.stack([(lam + scatter[j]) / (nu + nk[j] + d + 2) for j in range(k)])
    elif kind == "tied":
        cov = (lam + scatter.sum(axis=0)) / (nu + n + k + d + 1)
    elif kind == "diag":
        cov = np.stack([(lam + np.diag(scatter[j])) / (nu + nk[j] + 3) for j in range(k)])
    else:
        cov = np.array([(float(lam) + np.trace(scatter[j])) / (nu + (nk[j] + 1) * d + 2)
                        for j in range(k)])
    return nk / n, new_means, cov, float(row_ll.sum())




def without_permission_override() -> list[str]:
    """The command prefix under which chmod binds a child process: none for a user, and for
    root (whom chmod does not bind) root without the capabilities that override file
    permissions. Skips the test when running as root without setpriv."""
    import os
    import shutil

    import pytest

    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, where chmod does not bind, and no setpriv to drop "
                    "CAP_DAC_OVERRIDE")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
            "--inh-caps=-dac_override,-dac_read_search"]


def scipy_responsibilities(x: np.ndarray, params: GaussianParameters) -> np.ndarray:
    """γ [n, K] of a mixture on rows ``x`` with scipy's normal densities (the reference the
    variational starts take their responsibilities from)."""
    dense = dense_covariances(params)
    log_weighted = np.stack([np.log(w) + sps.multivariate_normal(m, c).logpdf(x)
                             for w, m, c in zip(params.weights, params.means, dense)], axis=1)
    return np.exp(log_weighted - logsumexp(log_weighted, axis=1, keepdims=True))


def sklearn_bayesian_fit(x: np.ndarray, resp: np.ndarray, covariance_type: str,
                         weight_type: str, max_iter: int = 100, tol: float = 1e-3,
                         reg_covar: float = 1e-6, **priors: object):
    """scikit-learn's BayesianGaussianMixture started from the responsibilities ``resp``
    [n, K]: its ``_initialize(X, resp)`` (one variational M-step), then its own loop (a warm
    start, which skips its initialisation). ``priors``: its ``*_prior`` arguments."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture as SkBayesian

    model = SkBayesian(n_components=resp.shape[1], covariance_type=covariance_type,
                       weight_concentration_prior_type=weight_type, max_iter=max_iter,
                       tol=tol, reg_covar=reg_covar, warm_start=True, **priors)
    model._check_parameters(x)
    model._initialize(x, resp)
    model.lower_bound_ = -np.inf
    model.converged_ = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x)
    return model


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours − theirs| / |theirs| over the elements (theirs nowhere 0)."""
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return float(np.max(np.abs(ours - theirs) / np.abs(theirs)))


def sklearn_variational_prior(model, weight_type: str):
    """scikit-learn's resolved priors (after ``_check_parameters``) as a VariationalPrior, in
    the rows' own coordinates."""
    from spark_gmm.kernels.variational import VariationalPrior

    return VariationalPrior(weight_type, model.weight_concentration_prior_,
                            model.mean_precision_prior_, np.array(model.mean_prior_),
                            float(model.degrees_of_freedom_prior_),
                            np.asarray(model.covariance_prior_, dtype=float))


def sklearn_bayesian_differences(ours: dict[str, np.ndarray], theirs) -> dict[str, float]:
    """Max relative difference of each fitted array from scikit-learn's: ``ours`` holds
    ``lowerBounds``, ``weights``, ``means``, ``covariances``, ``weightConcentration``,
    ``meanPrecision`` and ``degreesOfFreedom`` ([K]; scikit-learn's tied one is a scalar)."""
    k = len(theirs.weights_)
    return {
        "lowerBounds": relative_difference(ours["lowerBounds"],
                                           np.ravel(np.array(theirs.lower_bounds_))),
        "weights": relative_difference(ours["weights"], theirs.weights_),
        "means": relative_difference(ours["means"], theirs.means_),
        "covariances": relative_difference(ours["covariances"], theirs.covariances_),
        "weightConcentration": relative_difference(ours["weightConcentration"],
                                                   np.asarray(theirs.weight_concentration_)),
        "meanPrecision": relative_difference(ours["meanPrecision"], theirs.mean_precision_),
        "degreesOfFreedom": relative_difference(
            ours["degreesOfFreedom"], np.broadcast_to(theirs.degrees_of_freedom_, (k,))),
    }


def with_missing(x: np.ndarray, share: float, most: int, seed: int) -> np.ndarray:
    """A copy of ``x`` in which a ``share`` of the rows (at random) lose 1 to ``most`` of their
    features (NaN, at random; every row keeps at least one)."""
    rng = np.random.default_rng(seed)
    out = np.array(x, dtype=np.float64)
    d = x.shape[1]
    for i in np.flatnonzero(rng.uniform(size=x.shape[0]) < share):
        out[i, rng.choice(d, size=rng.integers(1, min(most, d - 1) + 1), replace=False)] = np.nan
    return out


def missing_reference_estep(x: np.ndarray, params: GaussianParameters):
    """Row by row, with scipy on each row's observed features: the observed-data
    log-likelihood [n], the responsibilities [n, K], the completed rows x̂_nk (missing entries
    E[x_m | x_o, k]) [n, K, D] and the conditional covariances in the missing block, zero
    elsewhere [n, K, D, D]."""
    dense = dense_covariances(params)
    n, (k, d) = x.shape[0], params.means.shape
    log_likelihood, resp = np.empty(n), np.empty((n, k))
    completed, conditional = np.empty((n, k, d)), np.zeros((n, k, d, d))
    for i, row in enumerate(x):
        o = ~np.isnan(row)
        m = ~o
        logs = np.array([np.log(params.weights[j]) + sps.multivariate_normal(
            params.means[j][o], dense[j][np.ix_(o, o)]).logpdf(row[o]) for j in range(k)])
        log_likelihood[i] = logsumexp(logs)
        resp[i] = np.exp(logs - log_likelihood[i])
        for j in range(k):
            s = dense[j]
            gain = s[np.ix_(m, o)] @ np.linalg.inv(s[np.ix_(o, o)])
            completed[i, j] = row
            completed[i, j, m] = params.means[j][m] + gain @ (row[o] - params.means[j][o])
            conditional[i, j][np.ix_(m, m)] = s[np.ix_(m, m)] - gain @ s[np.ix_(o, m)]
    return log_likelihood, resp, completed, conditional


def missing_reference_em(x: np.ndarray, weights: np.ndarray | None, init: GaussianParameters,
                         iterations: int, reg_covar: float):
    """EM with missing features, row by row (textbook form): ``iterations`` E- and M-steps
    from ``init``, then one more E-step. Returns the final parameters (weights, means,
    dense covariances) and the observed-data log-likelihood sum of the last E-step."""
    w = np.ones(x.shape[0]) if weights is None else weights
    params = init
    kind, k, d = init.covariance_type, init.n_components, init.n_features
    for _ in range(iterations):
        _, resp, completed, conditional = missing_reference_estep(x, params)
        wr = resp * w[:, None]
        nk = wr.sum(axis=0)
        means = np.einsum("nk,nkd->kd", wr, completed) / nk[:, None]
        diff = completed - means[None]
        scatter = (np.einsum("nk,nkd,nke->kde", wr, diff, diff)
                   + np.einsum("nk,nkde->kde", wr, conditional))
        if kind == "full":
            cov = scatter / nk[:, None, None] + reg_covar * np.eye(d)
        elif kind == "tied":
            cov = scatter.sum(axis=0) / nk.sum() + reg_covar * np.eye(d)
        elif kind == "diag":
            cov = np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None] + reg_covar
        else:
            cov = (np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None] + reg_covar).mean(1)
        params = GaussianParameters.from_covariances(nk / nk.sum(), means, cov, kind)
    log_likelihood = missing_reference_estep(x, params)[0]
    return params, float(w @ log_likelihood), k


def noise_reference_em(x: np.ndarray, w: np.ndarray, params: GaussianParameters,
                       iterations: int, reg_covar: float = 1e-6
                       ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, float]:
    """EM with a uniform component of density 1/V, every sum written row by row: (weights,
    noise weight, means, dense covariances, log-likelihood of the last E-step)."""
    kind, n, d = params.covariance_type, x.shape[0], x.shape[1]
    weights, noise = params.weights.copy(), params.noise_weight
    means, dense = params.means.copy(), dense_covariances(params)
    log_volume = params.noise_log_volume
    k = len(weights)
    for _ in range(iterations):
        log_p = np.column_stack(
            [np.log(weights[j]) + sps.multivariate_normal(means[j], dense[j]).logpdf(x)
             for j in range(k)] + [np.full(n, np.log(noise) - log_volume)])
        row_ll = logsumexp(log_p, axis=1)
        log_likelihood = float(w @ row_ll)
        resp = np.exp(log_p - row_ll[:, None])
        nk, sums, total = np.zeros(k + 1), np.zeros((k, d)), 0.0
        for i in range(n):
            total += w[i]
            for j in range(k + 1):
                nk[j] += w[i] * resp[i, j]
            for j in range(k):
                sums[j] += w[i] * resp[i, j] * x[i]
        means = sums / nk[:k, None]
        scatter = np.zeros((k, d, d))
        for i in range(n):
            for j in range(k):
                diff = x[i] - means[j]
                scatter[j] += w[i] * resp[i, j] * np.outer(diff, diff)
        full = scatter / nk[:k, None, None]
        if kind == "full":
            dense = full + reg_covar * np.eye(d)
        elif kind == "tied":
            dense = np.stack([scatter.sum(axis=0) / nk[:k].sum() + reg_covar * np.eye(d)] * k)
        elif kind == "diag":
            dense = np.stack([np.diag(np.diag(c)) + reg_covar * np.eye(d) for c in full])
        else:
            dense = np.stack([np.eye(d) * (np.trace(c) / d + reg_covar) for c in full])
        weights, noise = nk[:k] / total, nk[k] / total
    return weights, noise, means, dense, log_likelihood


def whole_and_resumed_fits(df, params: dict, checkpoint: str, monkeypatch, caplog,
                           max_iter: int = 5, stop_at: int = 2):
    """``GaussianMixture(**params)`` fitted whole, and the same fit stopped (a
    KeyboardInterrupt) right after its checkpoint of iteration ``stop_at`` was written, then
    run again to resume from that checkpoint: ``(whole, resumed)``. Asserts that it resumed."""
    import logging

    import pytest

    import spark_gmm.fit.driver as driver
    from spark_gmm import GaussianMixture

    whole = GaussianMixture(maxIter=max_iter, **params).fit(df)
    written = driver.write_checkpoint

    def stop_after(path, fingerprint, center, runs, data=None):
        written(path, fingerprint, center, runs, data)
        if max(run.n_iter for run in runs) == stop_at:
            raise KeyboardInterrupt(f"stopped after {stop_at} iterations")

    monkeypatch.setattr(driver, "write_checkpoint", stop_after)
    with pytest.raises(KeyboardInterrupt):
        GaussianMixture(maxIter=max_iter, checkpointPath=checkpoint, **params).fit(df)
    monkeypatch.setattr(driver, "write_checkpoint", written)
    with caplog.at_level(logging.INFO, logger="spark_gmm.fit.checkpoint"):
        resumed = GaussianMixture(maxIter=max_iter, checkpointPath=checkpoint,
                                  **params).fit(df)
    assert "resuming from checkpoint" in caplog.text
    assert f"at iteration {stop_at}" in caplog.text
    return whole, resumed
