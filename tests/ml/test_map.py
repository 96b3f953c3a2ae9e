"""GaussianMixture(prior="conjugate") on a local[2] SparkSession: MAP-EM against the
row-by-row reference, duplicated rows, persistence, shared fits and checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.errors import CovarianceError
from spark_gmm.kernels import ConjugatePrior, GaussianParameters
from tests.helpers import (
    dense_covariances,
    initial_parameters,
    make_mixture,
    map_reference_iteration,
    map_reference_log_prior,
    prior_scale_of,
    to_dataframe,
    whole_and_resumed_fits,
)


@pytest.fixture(scope="module")
def data(spark):
    x, *_ = make_mixture(n=400, seed=31, k=3)
    return x, to_dataframe(spark, x, partitions=3).cache()


def test_full_map_em_equals_the_reference_with_mclusts_defaults(data) -> None:
    x, df = data
    k, d = 3, x.shape[1]
    p = initial_parameters(x, k, "full", seed=2)
    start = GaussianMixtureModel.fromArrays(p.weights, p.means, p.covariances, "full")
    model = (GaussianMixture(k=k, maxIter=3, tol=0.0, regCovar=0.0, prior="conjugate")
             .setInitialModel(start).fit(df))
    # mclust's defaultPrior: the data mean, κ = 0.01, ν = D + 2, cov(data) / G^(2/d).
    prior = ConjugatePrior(x.mean(axis=0), 0.01, d + 2.0,
                           prior_scale_of("full", np.cov(x.T) / k ** (2 / d)))
    weights, means, dense = p.weights, p.means, dense_covariances(p)
    history = []
    for _ in range(3):
        before = map_reference_log_prior("full", means, dense, prior)
        weights, means, dense, ll = map_reference_iteration("full", x, weights, means, dense,
                                                            prior)
        history.append(ll + before)
    np.testing.assert_allclose(model.weights, weights, rtol=1e-9, atol=0)
    np.testing.assert_allclose(model.means, means, rtol=1e-9, atol=0)
    np.testing.assert_allclose(model.covariances, dense, rtol=1e-9, atol=0)
    summary = model.summary
    np.testing.assert_allclose(summary.logPosteriorHistory, history, rtol=1e-9)
    final = GaussianParameters.from_covariances(weights, means, dense, "full")
    assert summary.logPosterior == pytest.approx(
        summary.logLikelihood + map_reference_log_prior("full", final.means, dense, prior),
        rel=1e-9)
    assert summary.prior == "conjugate" and model.getPrior() == "conjugate"


def _duplicated_rows() -> np.ndarray:
    # Two clouds and 60 copies of one row: a component on the copies has zero scatter.
    rng = np.random.default_rng(8)
    return np.vstack([rng.normal(size=(200, 2)) * [1.0, 0.5],
                      rng.normal(size=(200, 2)) * 0.7 + [8.0, 1.0],
                      np.tile([[4.0, 30.0]], (60, 1))])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_duplicated_rows_fit_with_the_prior_where_plain_em_cannot(spark,
                                                                  covariance_type) -> None:
    df = to_dataframe(spark, _duplicated_rows(), partitions=2)
    params = dict(k=3, covarianceType=covariance_type, regCovar=0.0, seed=1, maxIter=20)
    with pytest.raises(CovarianceError, match="not positive definite"):
        GaussianMixture(**params).fit(df)
    model = GaussianMixture(prior="conjugate", **params).fit(df)
    dense = model.parameters.covariance.dense(model.covariances, 3, 2)
    assert np.all(np.isfinite(dense))
    assert all(np.linalg.eigvalsh(c).min() > 0 for c in dense)
    assert math.isfinite(model.summary.bic) and math.isfinite(model.summary.logPosterior)
    assert np.all(np.diff(model.summary.logPosteriorHistory) >= -1e-9)


def test_prior_params_and_log_posterior_are_saved(data, tmp_path) -> None:
    _, df = data
    model = GaussianMixture(k=2, covarianceType="diag", maxIter=4, prior="conjugate",
                            priorShrinkage=0.5, priorScale=[2.0], seed=3).fit(df)
    path = str(tmp_path / "model")
    model.save(path)
    loaded = GaussianMixtureModel.load(path)
    assert loaded.getPrior() == "conjugate"
    assert loaded.getPriorShrinkage() == 0.5 and loaded.getPriorScale() == [2.0]
    assert loaded.getPriorMean() is None and loaded.getPriorDegreesOfFreedom() is None
    assert loaded.summary.logPosterior == model.summary.logPosterior
    assert loaded.summary.logPosteriorHistory == model.summary.logPosteriorHistory
    assert loaded.summary.prior == "conjugate"
    plain = GaussianMixture(k=2, maxIter=2, seed=3).fit(df)
    assert plain.getPrior() == "none"
    assert plain.summary.logPosterior is None and plain.summary.logPosteriorHistory == []


def test_fit_multiple_with_a_prior_gives_each_maps_lone_fit(data) -> None:
    _, df = data
    estimator = GaussianMixture(maxIter=5, tol=0.0, prior="conjugate", regCovar=0.0, seed=4)
    maps = [{estimator.k: 2, estimator.covarianceType: "full"},
            {estimator.k: 3, estimator.covarianceType: "tied"},
            {estimator.k: 3, estimator.covarianceType: "spherical", estimator.prior: "none"}]
    together = dict(estimator.fitMultiple(df, maps))
    for index, param_map in enumerate(maps):
        alone = estimator.copy(param_map).fit(df)
        np.testing.assert_allclose(together[index].means, alone.means, rtol=1e-10)
        np.testing.assert_allclose(together[index].covariances, alone.covariances, rtol=1e-10)
        if param_map.get(estimator.prior) != "none":
            assert together[index].summary.logPosterior == pytest.approx(
                alone.summary.logPosterior, rel=1e-12)
    assert together[2].summary.logPosterior is None


def test_a_map_fit_resumes_from_its_checkpoint(data, tmp_path, monkeypatch, caplog) -> None:
    _, df = data
    checkpoint = str(tmp_path / "em.json")
    params = dict(k=3, covarianceType="tied", tol=0.0, prior="conjugate", seed=6,
                  initMode="random")
    whole, resumed = whole_and_resumed_fits(df, params, checkpoint, monkeypatch, caplog)
    np.testing.assert_allclose(resumed.covariances, whole.covariances, rtol=1e-12)
    np.testing.assert_allclose(resumed.summary.logPosteriorHistory,
                               whole.summary.logPosteriorHistory, rtol=1e-12)
    np.testing.assert_allclose(resumed.summary.logLikelihoodHistory,
                               whole.summary.logLikelihoodHistory, rtol=1e-12)


@pytest.mark.parametrize("init_mode, covariance_type",
                         [("k-means++", "tied"), ("random", "spherical")])
def test_every_init_mode_fits_duplicated_rows_with_the_prior(spark, init_mode,
                                                             covariance_type) -> None:
    df = to_dataframe(spark, _duplicated_rows(), partitions=2)
    model = GaussianMixture(k=3, covarianceType=covariance_type, initMode=init_mode, nInit=2,
                            regCovar=0.0, seed=5, maxIter=15, prior="conjugate").fit(df)
    dense = model.parameters.covariance.dense(model.covariances, 3, 2)
    assert all(np.linalg.eigvalsh(c).min() > 0 for c in dense)
    assert math.isfinite(model.summary.bic)
    assert len(model.summary.restartLogLikelihoodHistories) == 2  # both restarts ran
    assert model.summary.numIter == len(model.summary.logPosteriorHistory)
    assert np.all(np.diff(model.summary.logPosteriorHistory) >= -1e-9)


def test_weighted_rows_equal_repeated_rows_under_a_set_prior(spark) -> None:
    x, *_ = make_mixture(n=150, seed=44, k=2)
    counts = np.random.default_rng(1).integers(1, 4, size=len(x))
    p = initial_parameters(x, 2, "diag", seed=3)
    start = GaussianMixtureModel.fromArrays(p.weights, p.means, p.covariances, "diag")
    mean, scale = [0.5, -0.5, 1.0], [2.0, 1.0, 3.0]
    weighted = to_dataframe(spark, x, partitions=2, extra={"w": counts.astype(float)})
    model = (GaussianMixture(k=2, covarianceType="diag", maxIter=3, tol=0.0, regCovar=0.0,
                             prior="conjugate", priorMean=mean, priorScale=scale,
                             priorDegreesOfFreedom=7.0, weightCol="w")
             .setInitialModel(start).fit(weighted))
    # The reference on every row repeated as often as its weight.
    repeated = np.repeat(x, counts, axis=0)
    prior = ConjugatePrior(np.array(mean), 0.01, 7.0, np.array(scale))
    weights, means, dense = p.weights, p.means, dense_covariances(p)
    for _ in range(3):
        weights, means, cov, _ = map_reference_iteration("diag", repeated, weights, means,
                                                         dense, prior)
        dense = np.stack([np.diag(c) for c in cov])
    np.testing.assert_allclose(model.weights, weights, rtol=1e-9)
    np.testing.assert_allclose(model.means, means, rtol=1e-9)
    np.testing.assert_allclose(model.covariances, cov, rtol=1e-9)
