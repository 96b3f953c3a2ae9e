"""The distributed fit on a real local[2] SparkSession against independent references."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.kernels import COVARIANCE_TYPES
from tests.helpers import initial_parameters, local_fit, make_mixture, sklearn_fit, to_dataframe


@pytest.fixture(scope="module")
def mixture_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, labels, means, _ = make_mixture(n=3000, seed=21, k=3)
    return x, labels, means


@pytest.fixture(scope="module")
def mixture_df(spark, mixture_data):
    return to_dataframe(spark, mixture_data[0], partitions=4).cache()


def _start(x: np.ndarray, covariance_type: str) -> GaussianMixtureModel:
    p = initial_parameters(x, 3, covariance_type, seed=4)
    return GaussianMixtureModel.fromArrays(p.weights, p.means, p.covariances, covariance_type)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_spark_fit_matches_sklearn_from_same_start(spark, mixture_data, mixture_df,
                                                   covariance_type: str) -> None:
    x = mixture_data[0]
    start = _start(x, covariance_type)
    model = (GaussianMixture(k=3, covarianceType=covariance_type, maxIter=12, tol=0.0)
             .setInitialModel(start).fit(mixture_df))
    ref = sklearn_fit(x, start.parameters, max_iter=12, tol=0.0)
    assert model.summary.numIter == 12
    np.testing.assert_allclose(model.weights, ref.weights_, rtol=1e-6)
    np.testing.assert_allclose(model.means, ref.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.covariances, ref.covariances_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.summary.logLikelihoodHistory[-1] / len(x),
                               ref.lower_bound_, rtol=1e-9)


def test_spark_fit_equals_kernel_fit(mixture_data, mixture_df) -> None:
    x = mixture_data[0]
    start = _start(x, "full")
    model = (GaussianMixture(k=3, maxIter=10, tol=0.0).setInitialModel(start).fit(mixture_df))
    local = local_fit(x, start.parameters, max_iter=10, tol=0.0)
    np.testing.assert_allclose(model.means, local.params.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.covariances, local.params.covariances, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(np.array(model.summary.logLikelihoodHistory) / len(x),
                               local.history, rtol=1e-12)


def test_log_likelihood_never_decreases_on_spark(mixture_df) -> None:
    model = GaussianMixture(k=4, seed=3, initMode="random", maxIter=15, tol=0.0).fit(mixture_df)
    history = np.array(model.summary.logLikelihoodHistory)
    assert len(history) == 15
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    # The summary's final value is that of the returned model: at least the last E-step's.
    assert model.summary.logLikelihood >= history[-1] - 1e-9 * abs(history[-1])


@pytest.mark.parametrize("init_mode", ["k-means||", "random"])
def test_same_model_whatever_the_partitioning(spark, mixture_data, init_mode: str) -> None:
    x = mixture_data[0]
    models = [
        GaussianMixture(k=3, seed=11, initMode=init_mode, maxIter=8, tol=0.0)
        .fit(to_dataframe(spark, x, partitions=p))
        for p in (1, 3, 16)
    ]
    for other in models[1:]:
        np.testing.assert_allclose(other.weights, models[0].weights, rtol=1e-8)
        np.testing.assert_allclose(other.means, models[0].means, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(other.covariances, models[0].covariances, rtol=1e-8,
                                   atol=1e-10)


@pytest.mark.parametrize("init_mode", ["k-means||", "k-means++"])
def test_recovers_generating_means(mixture_data, mixture_df, init_mode: str) -> None:
    _, labels, means = mixture_data
    model = GaussianMixture(k=3, seed=2, initMode=init_mode, tol=1e-4).fit(mixture_df)
    assert model.summary.converged
    order = [int(np.argmin(np.linalg.norm(model.means - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(model.means[order], means, atol=0.15)
    sizes = np.bincount(labels, minlength=3)
    np.testing.assert_allclose(np.array(model.summary.clusterSizes)[order], sizes, rtol=0.03)


def test_classic_one_dimensional_example(spark) -> None:
    rng = np.random.default_rng(7)
    means, sds = np.array([-0.5, -0.1, 0.2]), np.array([0.2, 0.07, 0.13])
    x = np.concatenate([rng.normal(m, s, 4000) for m, s in zip(means, sds)])[:, None]
    model = GaussianMixture(k=3, seed=5, tol=1e-7, maxIter=1000).fit(
        to_dataframe(spark, x, partitions=4, kind="array<double>"))
    order = np.argsort(model.means[:, 0])
    np.testing.assert_allclose(model.means[order, 0], means, atol=0.03)
    np.testing.assert_allclose(np.sqrt(model.covariances[order, 0, 0]), sds, atol=0.03)


def test_n_init_keeps_the_best_restart(mixture_df) -> None:
    common = dict(k=5, initMode="random", maxIter=8, tol=0.0)
    singles = [GaussianMixture(seed=30 + i, **common).fit(mixture_df) for i in range(3)]
    best = GaussianMixture(seed=30, nInit=3, **common).fit(mixture_df)
    finals = [m.summary.logLikelihoodHistory[-1] for m in singles]
    winner = singles[int(np.argmax(finals))]
    np.testing.assert_allclose(best.summary.logLikelihoodHistory[-1], max(finals), rtol=1e-12)
    np.testing.assert_allclose(best.means, winner.means, rtol=1e-10)


def test_feature_column_kinds_give_the_same_model(spark) -> None:
    # Values exactly representable in float32, so array<float> carries the same numbers.
    x, *_ = make_mixture(n=1200, seed=4)
    x = (np.round(x * 64) / 64).astype(np.float32).astype(np.float64)
    fits = [GaussianMixture(k=3, seed=1, maxIter=6, tol=0.0, initMode="random")
            .fit(to_dataframe(spark, x, partitions=3, kind=kind))
            for kind in ("vector", "array<double>", "array<float>")]
    for other in fits[1:]:
        np.testing.assert_allclose(other.means, fits[0].means, rtol=1e-12)
        np.testing.assert_allclose(other.covariances, fits[0].covariances, rtol=1e-12)


def test_weights(spark, mixture_data) -> None:
    x = mixture_data[0][:1500]
    counts = np.random.default_rng(1).integers(0, 4, size=len(x))
    start = _start(x, "diag")
    def fit(df, **kw):
        return GaussianMixture(k=3, covarianceType="diag", maxIter=10, tol=0.0, **kw
                               ).setInitialModel(start).fit(df)
    plain = fit(to_dataframe(spark, x))
    constant = fit(to_dataframe(spark, x, extra={"w": np.full(len(x), 2.5)}), weightCol="w")
    np.testing.assert_allclose(constant.means, plain.means, rtol=1e-10)
    np.testing.assert_allclose(constant.covariances, plain.covariances, rtol=1e-10)
    weighted = fit(to_dataframe(spark, x, extra={"w": counts}), weightCol="w")
    duplicated = fit(to_dataframe(spark, np.repeat(x, counts, axis=0)))
    np.testing.assert_allclose(weighted.means, duplicated.means, rtol=1e-9)
    np.testing.assert_allclose(weighted.covariances, duplicated.covariances, rtol=1e-9)
    assert weighted.summary.weightSum == counts.sum()


def test_aggregation_depth_is_used_and_broadcasts_destroyed(mixture_df, monkeypatch,
                                                            one_job_per_pass) -> None:
    from pyspark import RDD, SparkContext

    depths: list[int] = []
    created: list = []  # kept alive, so every broadcast stays a distinct object
    original_tree_reduce, original_broadcast = RDD.treeReduce, SparkContext.broadcast

    def spy_tree_reduce(self, f, depth=2):
        depths.append(depth)
        return original_tree_reduce(self, f, depth)

    def spy_broadcast(self, value):
        created.append(original_broadcast(self, value))
        return created[-1]

    monkeypatch.setattr(RDD, "treeReduce", spy_tree_reduce)
    monkeypatch.setattr(SparkContext, "broadcast", spy_broadcast)
    model = GaussianMixture(k=3, seed=1, initMode="random", maxIter=4, tol=0.0,
                            aggregationDepth=3).fit(mixture_df)
    assert depths and set(depths) == {3}
    # one broadcast per statistics pass (4 iterations + the final pass), each destroyed
    assert len(created) >= model.summary.numIter + 1
    assert all(not broadcast._jbroadcast.isValid() for broadcast in created)


def test_fit_releases_its_cache(spark, mixture_df) -> None:
    before = set(spark.sparkContext._jsc.getPersistentRDDs().keySet())
    GaussianMixture(k=2, seed=1, maxIter=3).fit(mixture_df)
    after = set(spark.sparkContext._jsc.getPersistentRDDs().keySet())
    assert after == before
