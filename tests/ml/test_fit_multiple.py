"""fitMultiple in shared passes: every model equals the one fit gives for its map."""

from __future__ import annotations

import numpy as np
import pytest

import spark_gmm.ml.estimator as estimator_module
from spark_gmm import GaussianMixture
from tests.helpers import make_mixture, to_dataframe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def df(spark):
    x, *_ = make_mixture(n=3000, seed=61, k=3)
    return to_dataframe(spark, x, partitions=3).cache()


def _maps(gmm: GaussianMixture) -> list[dict]:
    grid = [{gmm.k: k, gmm.covarianceType: t}
            for t in ("full", "tied", "diag", "spherical") for k in (2, 3)]
    # and maps that differ in everything else a shared fit may vary
    grid.append({gmm.k: 3, gmm.regCovar: 1e-3, gmm.maxIter: 7, gmm.tol: 0.0, gmm.seed: 5,
                 gmm.nInit: 2, gmm.initMode: "k-means++"})
    grid.append({gmm.k: 4, gmm.covarianceType: "diag", gmm.initMode: "random", gmm.tol: 1e-8})
    return grid


def _record_fits(monkeypatch) -> list[int]:
    # The number of settings of each fit_mixtures call the estimator makes.
    calls: list[int] = []
    real = estimator_module.fit_mixtures
    monkeypatch.setattr(estimator_module, "fit_mixtures",
                        lambda data, settings, initials: calls.append(len(settings))
                        or real(data, settings, initials))
    return calls


def test_shared_fits_equal_separate_fits(df, monkeypatch) -> None:
    gmm = GaussianMixture(seed=3, maxIter=40, tol=1e-6)
    maps = _maps(gmm)
    shared_calls = _record_fits(monkeypatch)
    together = dict(gmm.fitMultiple(df, maps))
    assert shared_calls == [len(maps)]  # one shared fit for all of them
    assert sorted(together) == list(range(len(maps)))
    for index, param_map in enumerate(maps):
        alone = gmm.fit(df, param_map)
        assert shared_calls[-1] == 1  # a fit is the shared fit of one map
        shared = together[index]
        assert shared.getK() == alone.getK()
        assert shared.getCovarianceType() == alone.getCovarianceType()
        assert shared.summary.numIter == alone.summary.numIter
        for name in ("weights", "means", "covariances"):
            np.testing.assert_allclose(getattr(shared, name), getattr(alone, name),
                                       rtol=1e-8, atol=1e-12)
        assert shared.summary.logLikelihood == pytest.approx(alone.summary.logLikelihood,
                                                             rel=1e-10)
        assert shared.summary.clusterSizes == alone.summary.clusterSizes


def test_maps_that_cannot_share_are_fitted_one_by_one(df, monkeypatch) -> None:
    gmm = GaussianMixture(seed=3, maxIter=10)
    calls = _record_fits(monkeypatch)
    maps = [{gmm.k: 2}, {gmm.k: 3, gmm.featuresCol: "features", gmm.weightCol: "w"}]
    with pytest.raises(Exception, match="w"):  # no weight column: the second map's own error
        dict(gmm.fitMultiple(df, maps))
    assert calls == [1, 1]  # each map a fit of its own
    one = dict(gmm.fitMultiple(df, [{gmm.k: 2}]))  # a single map: a plain fit
    assert one[0].getK() == 2 and calls == [1, 1, 1]


def test_cross_validation_picks_the_same_model_in_parallel(df) -> None:
    from pyspark.ml.evaluation import ClusteringEvaluator
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    gmm = GaussianMixture(seed=2, maxIter=30, tol=1e-6)
    grid = ParamGridBuilder().addGrid(gmm.k, [2, 3, 4]).addGrid(
        gmm.covarianceType, ["full", "diag"]).build()
    best = []
    for parallelism in (1, 2):
        cv = CrossValidator(estimator=gmm, estimatorParamMaps=grid, numFolds=2, seed=7,
                            evaluator=ClusteringEvaluator(), parallelism=parallelism)
        model = cv.fit(df)
        best.append((model.bestModel.getK(), model.bestModel.getCovarianceType(),
                     list(np.round(model.avgMetrics, 10))))
    # the same models, so the same metrics to 1e-10 and the same winner, in either mode
    assert best[0] == best[1]
    assert len(best[0][2]) == len(grid)


def test_maps_starting_from_an_initial_model_share_the_passes(df, monkeypatch) -> None:
    start = GaussianMixture(k=3, seed=1, maxIter=3).fit(df)
    gmm = GaussianMixture(k=3, maxIter=15, tol=1e-6).setInitialModel(start)
    maps = [{gmm.regCovar: 1e-6}, {gmm.regCovar: 1e-2, gmm.maxIter: 5},
            {gmm.covarianceType: "full", gmm.tol: 1e-2}]
    calls = _record_fits(monkeypatch)
    together = dict(gmm.fitMultiple(df, maps))
    assert calls == [len(maps)]
    for index, param_map in enumerate(maps):
        alone = gmm.fit(df, param_map)
        assert together[index].summary.numIter == alone.summary.numIter
        for name in ("weights", "means", "covariances"):
            np.testing.assert_allclose(getattr(together[index], name), getattr(alone, name),
                                       rtol=1e-8, atol=1e-12)
