"""Drawing rows from a model: shares, means and covariances against the model's own, with
tolerances from the sample size; on the executors, rows fixed by (seed, partition)."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.kernels import COVARIANCE_TYPES, GaussianParameters, covariance_of
from spark_gmm.kernels.generate import sample_mixture
from spark_gmm.ml.sampling import partition_rows

WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[0.0, 0.0, 0.0], [6.0, -2.0, 1.0], [-5.0, 4.0, 8.0]])
FULL = np.array([[[1.0, 0.3, 0.0], [0.3, 2.0, -0.4], [0.0, -0.4, 0.5]],
                 [[0.5, 0.0, 0.1], [0.0, 0.5, 0.0], [0.1, 0.0, 1.5]],
                 [[2.0, -0.8, 0.0], [-0.8, 1.0, 0.2], [0.0, 0.2, 0.7]]])
COVARIANCES = {"full": FULL, "tied": FULL[0], "diag": np.array([[1.0, 2.0, 0.5],
                                                                [0.5, 0.5, 1.5],
                                                                [2.0, 1.0, 0.7]]),
               "spherical": np.array([1.0, 0.5, 2.0])}


def _params(covariance_type: str) -> GaussianParameters:
    return GaussianParameters.from_covariances(WEIGHTS, MEANS, COVARIANCES[covariance_type],
                                               covariance_type)


def _assert_sample_matches(params: GaussianParameters, x: np.ndarray, labels: np.ndarray
                           ) -> None:
    n = len(labels)
    dense = covariance_of(params.covariance_type).dense(params.covariances, 3, 3)
    shares = np.bincount(labels, minlength=3) / n
    # 5 standard deviations of a multinomial share, of a mean and of a sample covariance
    np.testing.assert_array_less(np.abs(shares - params.weights),
                                 5 * np.sqrt(params.weights * (1 - params.weights) / n))
    for k in range(3):
        rows = x[labels == k]
        m = len(rows)
        variances = np.diag(dense[k])
        np.testing.assert_array_less(np.abs(rows.mean(axis=0) - params.means[k]),
                                     5 * np.sqrt(variances / m))
        entry_sd = np.sqrt((np.outer(variances, variances) + dense[k] ** 2) / m)
        np.testing.assert_array_less(np.abs(np.cov(rows.T) - dense[k]), 5 * entry_sd + 1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_large_sample_has_the_model_s_shares_means_and_covariances(covariance_type: str
                                                                      ) -> None:
    params = _params(covariance_type)
    x, labels = sample_mixture(params, 200_000, np.random.default_rng(5))
    assert x.shape == (200_000, 3) and labels.shape == (200_000,)
    assert np.all(np.diff(labels) >= 0)  # grouped by component, as scikit-learn's
    _assert_sample_matches(params, x, labels)


def test_model_sample_is_reproducible_and_refuses_negative_counts() -> None:
    model = GaussianMixtureModel.fromArrays(WEIGHTS, MEANS, FULL)
    a, la = model.sample(1000, seed=3)
    b, lb = model.sample(1000, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, model.sample(1000, seed=4)[0])
    assert model.sample(0, seed=1)[0].shape == (0, 3)
    with pytest.raises(ValueError, match="n must be 0 or more"):
        model.sample(-1)


def test_rows_drawn_on_the_executors_depend_only_on_seed_and_partition(spark) -> None:
    model = GaussianMixtureModel.fromArrays(WEIGHTS, MEANS, FULL)
    n, partitions = 60_001, 5
    df = model.sampleDataFrame(spark, n, seed=11, numPartitions=partitions)
    assert df.columns == ["features", "label"] and df.rdd.getNumPartitions() == partitions
    rows = df.collect()
    assert len(rows) == n
    x = np.array([r.features.toArray() for r in rows])
    labels = np.array([r.label for r in rows])
    # Independently of Spark: partition i is sample_mixture seeded by (11, i), in order.
    parts = [sample_mixture(model.parameters, int(count), np.random.default_rng([11, i]))
             for i, count in enumerate(partition_rows(n, partitions))]
    np.testing.assert_array_equal(x, np.vstack([p[0] for p in parts]))
    np.testing.assert_array_equal(labels, np.concatenate([p[1] for p in parts]))
    assert sorted(partition_rows(n, partitions)) == [12000] * 4 + [12001]
    _assert_sample_matches(model.parameters, x, labels)
    # What the generator drew, the estimator recovers (means within 5 standard errors).
    fitted = GaussianMixture(k=3, seed=2, tol=1e-8).fit(df)
    order = [int(np.argmin(np.linalg.norm(fitted.means - m, axis=1))) for m in MEANS]
    assert sorted(order) == [0, 1, 2]
    counts = np.bincount(labels, minlength=3)
    for k, j in enumerate(order):
        np.testing.assert_array_less(np.abs(fitted.means[j] - MEANS[k]),
                                     5 * np.sqrt(np.diag(FULL[k]) / counts[k]))
    assert df.count() == model.sampleDataFrame(spark, n, seed=12, numPartitions=2).count()
