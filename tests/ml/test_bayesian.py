"""BayesianGaussianMixture on a local[2] SparkSession against scikit-learn's
BayesianGaussianMixture from the same responsibilities: every covariance type and weight
prior, pruning, partition invariance, scoring, persistence, Pipelines and sampling."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel

from spark_gmm import (
    BayesianGaussianMixture,
    BayesianGaussianMixtureModel,
    GaussianMixtureModel,
)
from spark_gmm.errors import InvalidInputError
from spark_gmm.kernels import COVARIANCE_TYPES
from spark_gmm.kernels.variational import WEIGHT_PRIOR_TYPES
from tests.helpers import (
    initial_parameters,
    make_mixture,
    relative_difference,
    scipy_responsibilities,
    sklearn_bayesian_differences,
    sklearn_bayesian_fit,
    to_dataframe,
)

CASES = [(t, w) for t in COVARIANCE_TYPES for w in WEIGHT_PRIOR_TYPES]


@pytest.fixture(scope="module")
def data(spark):
    x, *_ = make_mixture(n=500, seed=41, k=3, offset=30.0)
    return x, to_dataframe(spark, x, partitions=3).cache()


def _start(x, k, covariance_type, seed=5):
    p = initial_parameters(x, k, covariance_type, seed=seed)
    return p, GaussianMixtureModel.fromArrays(p.weights, p.means, p.covariances,
                                              covariance_type)


def _differences(model, theirs) -> dict[str, float]:
    return sklearn_bayesian_differences({
        "lowerBounds": model.summary.lowerBoundHistory, "weights": model.weights,
        "means": model.means, "covariances": model.covariances,
        "weightConcentration": model.weightConcentration,
        "meanPrecision": model.meanPrecision, "degreesOfFreedom": model.degreesOfFreedom},
        theirs)


@pytest.mark.parametrize(("covariance_type", "weight_type"), CASES)
def test_fit_equals_sklearn_from_the_initial_models_responsibilities(
        data, covariance_type, weight_type) -> None:
    x, df = data
    k = 5
    params, start = _start(x, k, covariance_type)
    theirs = sklearn_bayesian_fit(x, scipy_responsibilities(x, params), covariance_type,
                                  weight_type, max_iter=300)
    model = (BayesianGaussianMixture(k=k, covarianceType=covariance_type, maxIter=300,
                                     weightConcentrationPriorType=weight_type)
             .setInitialModel(start).fit(df))
    summary = model.summary
    assert summary.numIter == theirs.n_iter_ and summary.converged == theirs.converged_
    differences = _differences(model, theirs)
    assert max(differences.values()) < 1e-8, differences
    assert summary.lowerBound == summary.lowerBoundHistory[-1]


def test_surplus_components_are_pruned_as_in_sklearn(spark) -> None:
    x, *_ = make_mixture(n=600, seed=23, k=3)
    df = to_dataframe(spark, x, partitions=2)
    k = 8
    params, start = _start(x, k, "full", seed=6)
    theirs = sklearn_bayesian_fit(x, scipy_responsibilities(x, params), "full",
                                  "dirichlet_process", max_iter=500,
                                  weight_concentration_prior=0.01)
    model = (BayesianGaussianMixture(k=k, maxIter=500, weightConcentrationPrior=0.01)
             .setInitialModel(start).fit(df))
    assert max(_differences(model, theirs).values()) < 1e-8
    assert model.summary.effectiveComponents == np.sum(theirs.weights_ > 0.01) == 3
    # From k-means|| too: the same three components survive.
    drawn = BayesianGaussianMixture(k=k, maxIter=500, weightConcentrationPrior=0.01,
                                    seed=3).fit(df)
    assert drawn.summary.effectiveComponents == 3
    assert drawn.summary.converged


def test_the_fit_does_not_depend_on_the_partitions(spark, data) -> None:
    x, _ = data
    _, start = _start(x, 4, "tied", seed=2)
    models = [BayesianGaussianMixture(k=4, covarianceType="tied", tol=1e-6)
              .setInitialModel(start).fit(to_dataframe(spark, x, partitions=n))
              for n in (1, 5)]
    one, several = models
    assert one.summary.numIter == several.summary.numIter
    for name in ("weights", "means", "covariances", "weightConcentration", "meanPrecision",
                 "degreesOfFreedom"):
        assert relative_difference(getattr(several, name), getattr(one, name)) < 1e-12, name
    assert relative_difference(several.summary.lowerBoundHistory,
                               one.summary.lowerBoundHistory) < 1e-12


def test_transform_predicts_as_sklearn_and_the_model_saves_and_loads(data, tmp_path) -> None:
    x, df = data
    k = 4
    params, start = _start(x, k, "diag", seed=9)
    theirs = sklearn_bayesian_fit(x, scipy_responsibilities(x, params), "diag",
                                  "dirichlet_distribution")
    model = (BayesianGaussianMixture(k=k, covarianceType="diag",
                                     weightConcentrationPriorType="dirichlet_distribution",
                                     probabilityCol="p")
             .setInitialModel(start).fit(df))
    rows = model.transform(df).select("features", "p", "prediction").collect()
    features = np.array([r.features.toArray() for r in rows])
    probability = np.array([r.p.toArray() for r in rows])
    np.testing.assert_allclose(probability, theirs.predict_proba(features), rtol=1e-8,
                               atol=1e-12)
    assert [r.prediction for r in rows] == theirs.predict(features).tolist()
    assert model.predict(features[0]) == theirs.predict(features[:1])[0]
    path = str(tmp_path / "bayesian")
    model.save(path)
    loaded = BayesianGaussianMixtureModel.load(path)
    for name in ("weights", "means", "covariances", "weightConcentration", "meanPrecision",
                 "degreesOfFreedom"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert loaded.summary == model.summary
    assert loaded.getProbabilityCol() == "p" and loaded.uid == model.uid
    assert loaded.prior.weight_concentration == pytest.approx(1 / k)
    np.testing.assert_array_equal(loaded.prior.covariance, model.prior.covariance)
    again = loaded.transform(df).select("p").collect()
    np.testing.assert_array_equal([r.p.toArray() for r in again], probability)


def test_pipeline_sampling_and_bad_params(data, tmp_path) -> None:
    x, df = data
    pipeline = Pipeline(stages=[BayesianGaussianMixture(k=3, covarianceType="spherical",
                                                        seed=1)])
    fitted = pipeline.fit(df)
    path = str(tmp_path / "pipeline")
    fitted.save(path)
    loaded = PipelineModel.load(path)
    model = loaded.stages[0]
    assert isinstance(model, BayesianGaussianMixtureModel)
    np.testing.assert_array_equal(model.means, fitted.stages[0].means)
    assert loaded.transform(df).count() == x.shape[0]
    sample, labels = model.sample(20000, seed=4)
    assert sample.shape == (20000, 3) and set(labels) <= set(range(3))
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 20000, model.weights,
                               atol=0.02)
    heavy = int(np.argmax(model.weights))
    np.testing.assert_allclose(sample[labels == heavy].var(axis=0),
                               model.covariances[heavy], rtol=0.1)
    with pytest.raises(InvalidInputError, match="degreesOfFreedomPrior must be > D − 1"):
        BayesianGaussianMixture(k=2, degreesOfFreedomPrior=1.5).fit(df)
    with pytest.raises(ValueError, match="weightConcentrationPriorType must be one of"):
        BayesianGaussianMixture(k=2, weightConcentrationPriorType="dirichlet").fit(df)


def test_row_weights_equal_repeated_rows_and_restarts_keep_the_best(spark, data) -> None:
    x, _ = data
    repeats = np.random.default_rng(8).integers(1, 4, size=x.shape[0])
    weighted = to_dataframe(spark, x, partitions=3, extra={"w": repeats.astype(float)})
    repeated = to_dataframe(spark, np.repeat(x, repeats, axis=0), partitions=2)
    _, start = _start(x, 3, "full", seed=12)
    # The default covariance prior's n/(n − 1) counts rows, not weight: set it.
    scale = np.cov(np.repeat(x, repeats, axis=0).T).ravel().tolist()
    by_weight, by_rows = (
        BayesianGaussianMixture(k=3, weightCol=column, covariancePrior=scale)
        .setInitialModel(start).fit(df)
        for column, df in (("w", weighted), ("", repeated)))
    assert by_weight.summary.numIter == by_rows.summary.numIter
    for name in ("weights", "means", "covariances", "weightConcentration"):
        assert relative_difference(getattr(by_weight, name), getattr(by_rows, name)) < 1e-10
    restarts = BayesianGaussianMixture(k=3, nInit=3, seed=2, initMode="random").fit(weighted)
    finals = [history[-1] for history in restarts.summary.restartLowerBounds]
    assert len(finals) == 3 and restarts.summary.lowerBound == max(finals)


def test_rows_skewed_across_hosts_are_stored_again_evenly(spark, data, monkeypatch,
                                                          caplog) -> None:
    import logging

    from spark_gmm.fit import driver
    from spark_gmm.runtime import balance

    x, df = data
    _, start = _start(x, 3, "full", seed=12)
    evenly = BayesianGaussianMixture(k=3).setInitialModel(start).fit(df)
    # As if on two hosts, with the threshold lowered to these few rows: one partition holds
    # every row.
    monkeypatch.setattr(driver, "executor_hosts", lambda sc: 2)
    monkeypatch.setattr(balance, "MIN_REBALANCE_ROWS", 100)
    with caplog.at_level(logging.INFO, logger="spark_gmm"):
        skewed = (BayesianGaussianMixture(k=3).setInitialModel(start)
                  .fit(to_dataframe(spark, x, partitions=1)))
    assert "rebalancing: the rows are stored again" in caplog.text
    assert relative_difference(skewed.covariances, evenly.covariances) < 1e-12
    assert relative_difference(skewed.summary.lowerBoundHistory,
                               evenly.summary.lowerBoundHistory) < 1e-12


def test_the_run_record_times_each_iteration_and_counts_the_passes(data, tmp_path) -> None:
    x, df = data
    _, start = _start(x, 3, "diag", seed=4)
    model = (BayesianGaussianMixture(k=3, covarianceType="diag", maxIter=4, tol=0.0)
             .setInitialModel(start).fit(df))
    record = model.runRecord
    assert model.summary.numIter == 4 and len(record.iterationSeconds) == 4
    assert min(record.iterationSeconds) > 0
    assert set(record.phaseSeconds) == {"storing", "initialisation", "em"}
    assert sum(record.iterationSeconds) <= record.phaseSeconds["em"]
    # diag: the prior comes from the storing pass's moments; then one pass for the initial
    # model's responsibilities and one per iteration
    assert record.residentPasses + record.jobPasses == 1 + 4
    assert record.storedBytes == 8 * x.shape[0] * x.shape[1]
    assert sum(record.balance["partitionRows"]) == x.shape[0]
    assert not record.balance["rebalanced"]
    model.save(str(tmp_path / "model"))
    loaded = BayesianGaussianMixtureModel.load(str(tmp_path / "model"))
    assert not loaded.hasRunRecord
    with pytest.raises(RuntimeError, match="not saved with it"):
        _ = loaded.runRecord
