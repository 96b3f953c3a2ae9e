"""missingFeatures="marginalize" with the estimator's other options: the MAP prior against a
row-by-row MAP M-step on the expected statistics and its default scale, checkpoint resume,
fitMultiple, select_model's criteria, every initMode with nInit > 1 against scipy's
observed-data log-likelihood of the fitted model."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.kernels import ConjugatePrior
from tests.helpers import (
    dense_covariances,
    initial_parameters,
    make_mixture,
    map_reference_log_prior,
    missing_reference_estep,
    to_dataframe,
    whole_and_resumed_fits,
    with_missing,
)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    x = make_mixture(n=400, seed=12, k=3, offset=12.0)[0]
    return with_missing(x, share=0.3, most=2, seed=13)


@pytest.fixture(scope="module")
def rows_df(spark, rows):
    return to_dataframe(spark, rows, partitions=3).cache()


def _start(x: np.ndarray, covariance_type: str) -> GaussianMixtureModel:
    p = initial_parameters(x[~np.isnan(x).any(axis=1)], 3, covariance_type, seed=4)
    return GaussianMixtureModel.fromArrays(p.weights, p.means, p.covariances, covariance_type)


def _map_missing_iteration(kind: str, x: np.ndarray, params, prior: ConjugatePrior):
    """One MAP-EM iteration with missing features, regCovar 0: the E-step of
    missing_reference_estep (scipy, row by row), the expected statistics summed row by row
    (completed rows and the conditional covariances), then the posterior modes of
    docs/bayesian.md. Returns (weights, means, dense covariances, log-likelihood of
    ``params``)."""
    row_ll, resp, completed, conditional = missing_reference_estep(x, params)
    n, d = x.shape
    k = resp.shape[1]
    nk, sums = np.zeros(k), np.zeros((k, d))
    for i in range(n):
        for j in range(k):
            nk[j] += resp[i, j]
            sums[j] += resp[i, j] * completed[i, j]
    xbar = sums / nk[:, None]
    scatter = np.zeros((k, d, d))
    for i in range(n):
        for j in range(k):
            diff = completed[i, j] - xbar[j]
            scatter[j] += resp[i, j] * (np.outer(diff, diff) + conditional[i, j])
    kappa, nu, lam = prior.shrinkage, prior.dof, prior.scale
    for j in range(k):
        gap = xbar[j] - prior.mean
        scatter[j] += kappa * nk[j] / (kappa + nk[j]) * np.outer(gap, gap)
    means = (nk[:, None] * xbar + kappa * prior.mean) / (nk[:, None] + kappa)
    if kind == "full":
        dense = np.stack([(lam + scatter[j]) / (nu + nk[j] + d + 2) for j in range(k)])
    else:  # diag
        dense = np.stack([np.diag((lam + np.diag(scatter[j])) / (nu + nk[j] + 3))
                          for j in range(k)])
    return nk / n, means, dense, float(row_ll.sum())


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_map_prior_equals_the_row_by_row_map_step(rows, rows_df, covariance_type) -> None:
    from spark_gmm.kernels import GaussianParameters

    d = rows.shape[1]
    mean = [0.5, -1.0, 2.0]
    scale = ([[2.0, 0.3, 0.0], [0.3, 1.5, 0.2], [0.0, 0.2, 1.0]] if covariance_type == "full"
             else [2.0, 1.5, 1.0])
    start = _start(rows, covariance_type)
    model = (GaussianMixture(k=3, covarianceType=covariance_type, maxIter=4, tol=0.0,
                             regCovar=0.0, missingFeatures="marginalize", prior="conjugate",
                             priorMean=mean, priorShrinkage=0.5, priorDegreesOfFreedom=d + 3.0,
                             priorScale=np.ravel(scale).tolist())
             .setInitialModel(start).fit(rows_df))
    prior = ConjugatePrior(np.array(mean), 0.5, d + 3.0, np.array(scale))
    params = start.parameters
    history = []
    for _ in range(4):
        dense = dense_covariances(params)
        before = map_reference_log_prior(covariance_type, params.means, dense, prior)
        weights, means, dense, ll = _map_missing_iteration(covariance_type, rows, params,
                                                           prior)
        history.append(ll + before)
        cov = dense if covariance_type == "full" else np.diagonal(dense, axis1=1, axis2=2)
        params = GaussianParameters.from_covariances(weights, means, cov, covariance_type)
    np.testing.assert_allclose(model.weights, params.weights, rtol=1e-9)
    np.testing.assert_allclose(model.means, params.means, rtol=1e-9)
    np.testing.assert_allclose(dense_covariances(model.parameters), dense_covariances(params),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.summary.logPosteriorHistory, history, rtol=1e-9)
    assert np.all(np.diff(history) >= -1e-9)  # the reference's own log posterior rises
    final_ll = missing_reference_estep(rows, params)[0].sum()
    assert model.summary.logLikelihood == pytest.approx(final_ll, rel=1e-9)


def test_map_prior_with_default_hyperparameters_fits(rows, rows_df) -> None:
    model = GaussianMixture(k=3, maxIter=10, seed=2, missingFeatures="marginalize",
                            prior="conjugate").fit(rows_df)
    assert np.isfinite(model.summary.logPosterior)
    assert np.all(np.isfinite(model.means)) and np.all(np.isfinite(model.covariances))
    assert np.all(np.diff(model.summary.logPosteriorHistory) >= -1e-9)


def test_the_default_full_prior_scale_takes_the_observed_variances(rows, rows_df) -> None:
    # Λ unset: the rows' covariance / K^(2/D), each missing entry at its feature's observed
    # mean with that feature's observed variance (docs/real-rows.md), so its diagonal is the
    # observed variance, as the `diag` default's; both unbiased by n / (n − 1).
    n, d = rows.shape
    mean = np.nanmean(rows, axis=0)
    variance = np.nanvar(rows, axis=0)
    centred = np.nan_to_num(rows - mean)
    scatter = centred.T @ centred + np.diag(np.isnan(rows).sum(axis=0) * variance)
    scale = scatter / n * n / (n - 1) / 3 ** (2 / d)
    np.testing.assert_allclose(np.diag(scale), variance * n / (n - 1) / 3 ** (2 / d))
    start = _start(rows, "full")
    fits = [GaussianMixture(k=3, maxIter=2, tol=0.0, missingFeatures="marginalize",
                            prior="conjugate", **given).setInitialModel(start).fit(rows_df)
            for given in ({}, {"priorMean": mean.tolist(), "priorScale": scale.ravel().tolist()})]
    np.testing.assert_allclose(fits[0].covariances, fits[1].covariances, rtol=1e-9)
    assert fits[0].summary.logPosterior == pytest.approx(fits[1].summary.logPosterior,
                                                         rel=1e-9)


def test_a_marginalized_fit_resumes_from_its_checkpoint(rows_df, tmp_path, monkeypatch,
                                                        caplog) -> None:
    checkpoint = str(tmp_path / "em.json")
    params = dict(k=3, covarianceType="full", tol=0.0, seed=6, nInit=2,
                  missingFeatures="marginalize")
    whole, resumed = whole_and_resumed_fits(rows_df, params, checkpoint, monkeypatch, caplog)
    np.testing.assert_allclose(resumed.means, whole.means, rtol=1e-12)
    np.testing.assert_allclose(resumed.covariances, whole.covariances, rtol=1e-12)
    np.testing.assert_allclose(resumed.summary.logLikelihoodHistory,
                               whole.summary.logLikelihoodHistory, rtol=1e-12)


def test_fit_multiple_equals_the_separate_fits(rows_df) -> None:
    estimator = GaussianMixture(maxIter=5, tol=0.0, seed=4, missingFeatures="marginalize")
    maps = [{estimator.k: 2, estimator.covarianceType: "full"},
            {estimator.k: 3, estimator.covarianceType: "diag",
             estimator.prior: "conjugate"}]
    together = dict(estimator.fitMultiple(rows_df, maps))
    for index, param_map in enumerate(maps):
        alone = estimator.copy(param_map).fit(rows_df)
        np.testing.assert_allclose(together[index].weights, alone.weights, rtol=1e-12)
        np.testing.assert_allclose(together[index].means, alone.means, rtol=1e-12)
        np.testing.assert_allclose(together[index].covariances, alone.covariances, rtol=1e-12)
        assert together[index].summary.logLikelihood == pytest.approx(
            alone.summary.logLikelihood, rel=1e-12)
        assert together[index].getMissingFeatures() == "marginalize"


@pytest.mark.parametrize("init_mode", ["k-means||", "k-means++", "random"])
def test_every_init_mode_gives_the_observed_data_likelihood(rows, rows_df, init_mode) -> None:
    model = GaussianMixture(k=3, covarianceType="full", initMode=init_mode, nInit=2, seed=7,
                            maxIter=4, tol=0.0, missingFeatures="marginalize").fit(rows_df)
    assert len(model.summary.restartLogLikelihoodHistories) == 2  # both restarts ran
    assert np.all(np.isfinite(model.means))
    # The summary's log-likelihood is the model's own: one more E-step with scipy, each row
    # on its observed features.
    reference = missing_reference_estep(rows, model.parameters)[0].sum()
    assert model.summary.logLikelihood == pytest.approx(reference, rel=1e-9)
    assert model.summary.logLikelihoodHistory[-1] <= reference + 1e-9 * abs(reference)


def test_select_model_scores_each_fit_on_the_observed_features(rows, rows_df) -> None:
    import math

    from spark_gmm import select_model

    n, d = rows.shape
    selection = select_model(rows_df, k=[2, 3], covarianceTypes=("full", "diag"), seed=3,
                             maxIter=8, missingFeatures="marginalize")
    assert (selection.table["error"] == "").all() and len(selection.table) == 4
    for _, row in selection.table.iterrows():
        k, kind = int(row["k"]), row["covarianceType"]
        model = selection.models[(k, kind)]
        assert model.getMissingFeatures() == "marginalize"
        row_ll, resp, _, _ = missing_reference_estep(rows, model.parameters)
        assert row["logLikelihood"] == pytest.approx(row_ll.sum(), rel=1e-9)
        p = (k * d * (d + 1) // 2 if kind == "full" else k * d) + k * d + k - 1
        assert row["bic"] == pytest.approx(-2 * row_ll.sum() + p * math.log(n), rel=1e-9)
        entropy = -np.sum(resp * np.log(np.where(resp > 0, resp, 1.0)))
        assert row["icl"] == pytest.approx(row["bic"] + 2 * entropy, rel=1e-9)
