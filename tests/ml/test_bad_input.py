"""Bad input gets a clear error naming the column, the count and the fix; odd and hostile
input, table by table, gets a clear error or the declared policy, never a wrong model."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel, InvalidInputError
from tests.helpers import initial_parameters, make_mixture, to_dataframe

NAN, INF = float("nan"), float("inf")


def _fit(df, **params):
    return GaussianMixture(**{"k": 2, "seed": 1, "maxIter": 5, **params}).fit(df)


@pytest.mark.parametrize(
    ("bad_value", "pattern"),
    [
        (NAN, r"'features' has NaN, infinite or null values in 2 of 6 rows"),
        (INF, r"'features' has NaN, infinite or null values in 2 of 6 rows"),
        (-INF, r"'features' has NaN, infinite or null values in 2 of 6 rows"),
        (None, r"'features' has NaN, infinite or null values in 2 of 6 rows"),
    ],
)
def test_non_finite_or_null_elements(spark, bad_value, pattern) -> None:
    rows = [([1.0, 2.0],), ([bad_value, 1.0],), ([3.0, 1.0],), ([0.0, bad_value],),
            ([5.0, 5.0],), ([4.0, 4.0],)]
    df = spark.createDataFrame(rows, "features array<double>")
    with pytest.raises(InvalidInputError, match=pattern):
        _fit(df)


def test_null_feature_rows(spark) -> None:
    df = spark.createDataFrame([([1.0],), (None,), ([2.0],)], "features array<double>")
    with pytest.raises(InvalidInputError, match=r"null in 1 of 3 rows; drop or impute"):
        _fit(df)


def test_unequal_lengths(spark) -> None:
    df = spark.createDataFrame([([1.0, 2.0],), ([2.0],), ([2.0, 3.0],)], "features array<double>")
    with pytest.raises(InvalidInputError, match="different or zero lengths"):
        _fit(df)


def test_wrong_type_and_missing_column(spark) -> None:
    df = spark.createDataFrame([("a",), ("b",)], "features string")
    with pytest.raises(InvalidInputError, match=r"'features' has type string.*VectorAssembler"):
        _fit(df)
    with pytest.raises(InvalidInputError, match=r"'x' not found; available columns: features"):
        _fit(df, featuresCol="x")


def test_empty_dataframe(spark) -> None:
    df = spark.createDataFrame([], "features array<double>")
    with pytest.raises(InvalidInputError, match="empty"):
        _fit(df)


@pytest.mark.parametrize(("params", "pattern"), [
    ({"k": 0}, "k must be at least 1"),
    ({"covarianceType": "banana"}, "covarianceType must be one of full, tied, diag, spherical"),
    ({"initMode": "magic"}, "initMode must be one of"),
    ({"regCovar": -1.0}, "regCovar must be >= 0"),
    ({"maxIter": 0}, "maxIter must be at least 1"),
])
def test_invalid_params(spark, params, pattern) -> None:
    df = spark.createDataFrame([([1.0],), ([2.0],)], "features array<double>")
    with pytest.raises(ValueError, match=pattern):
        _fit(df, **params)


def test_k_larger_than_rows(spark) -> None:
    df = spark.createDataFrame([([1.0],), ([2.0],)], "features array<double>")
    with pytest.raises(InvalidInputError, match=r"k=3 is larger than the number of rows \(2\)"):
        _fit(df, k=3)


def test_k_larger_than_distinct_rows_with_random_init(spark) -> None:
    df = spark.createDataFrame([([1.0],), ([1.0],), ([2.0],)], "features array<double>")
    with pytest.raises(InvalidInputError, match="only 2 distinct rows"):
        _fit(df, k=3, initMode="random")


@pytest.mark.parametrize(("weights", "pattern"), [
    ([1.0, -1.0, 2.0, 1.0], r"'w' has 0 null/NaN/infinite and 1 negative values in 4 rows"),
    ([1.0, NAN, 2.0, 1.0], r"'w' has 1 null/NaN/infinite and 0 negative values"),
    ([1.0, None, 2.0, 1.0], r"'w' has 1 null/NaN/infinite"),
    ([0.0, 0.0, 0.0, 0.0], r"'w' sums to 0.0"),
])
def test_bad_weights(spark, weights, pattern) -> None:
    rows = [([float(i)], w) for i, w in enumerate(weights)]
    df = spark.createDataFrame(rows, "features array<double>, w double")
    with pytest.raises(InvalidInputError, match=pattern):
        _fit(df, weightCol="w")


def test_missing_or_non_numeric_weight_column(spark) -> None:
    df = spark.createDataFrame([([1.0], "a"), ([2.0], "b")], "features array<double>, w string")
    with pytest.raises(InvalidInputError, match="'w' has type string; it must be numeric"):
        _fit(df, weightCol="w")
    with pytest.raises(InvalidInputError, match="weight column 'v' not found"):
        _fit(df, weightCol="v")


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_constant_feature_does_not_crash(spark, covariance_type) -> None:
    x, *_ = make_mixture(n=300, seed=3)
    x[:, 1] = 7.0
    model = _fit(to_dataframe(spark, x), k=3, covarianceType=covariance_type, initMode="random")
    assert np.all(np.isfinite(model.covariances))
    assert np.all(np.isfinite(model.summary.logLikelihoodHistory))


def test_null_vectors_are_reported_not_crashed(spark) -> None:
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import StructField, StructType

    schema = StructType([StructField("features", VectorUDT())])
    df = spark.createDataFrame([(Vectors.dense([1.0]),), (None,), (Vectors.dense([2.0]),)],
                               schema)
    with pytest.raises(InvalidInputError, match=r"null in 1 of 3 rows"):
        _fit(df)


# --- odd and hostile input: a clear error or the declared policy, never a wrong model

def _fit_odd(df, **params):
    return GaussianMixture(**{"seed": 1, "maxIter": 10, **params}).fit(df)


def test_one_row(spark) -> None:
    df = to_dataframe(spark, np.array([[1.5, -2.0]]), partitions=1)
    model = _fit_odd(df, k=1)
    np.testing.assert_array_equal(model.means, [[1.5, -2.0]])
    np.testing.assert_allclose(model.covariances[0], np.eye(2) * 1e-6)  # closed form: regCovar
    with pytest.raises(InvalidInputError, match=r"k=2 is larger than the number of rows \(1\)"):
        _fit_odd(df, k=2)


def test_all_rows_identical(spark) -> None:
    df = to_dataframe(spark, np.tile([[3.0, 4.0]], (40, 1)), partitions=2)
    model = _fit_odd(df, k=2)  # k-means|| finds one centre; the other component is re-seeded
    assert np.all(np.isfinite(model.covariances)) and np.all(np.isfinite(model.weights))
    np.testing.assert_allclose(model.means, [[3.0, 4.0]] * 2, atol=1e-2)
    with pytest.raises(InvalidInputError, match="only 1 distinct rows"):
        _fit_odd(df, k=2, initMode="random")


def test_collinear_features_stay_positive_definite(spark) -> None:
    x, *_ = make_mixture(n=400, seed=6, n_features=2)
    x = np.column_stack([x, 2.0 * x[:, 0] - x[:, 1]])  # third column is exactly collinear
    model = _fit_odd(to_dataframe(spark, x), k=3, initMode="random")
    assert np.all(np.linalg.eigvalsh(model.covariances) > 0)
    assert np.all(np.isfinite(model.summary.logLikelihoodHistory))


@pytest.mark.parametrize("scale", [1e12, 1e-12])
def test_extreme_magnitudes(spark, scale: float) -> None:
    x, *_ = make_mixture(n=600, seed=8)
    x = np.round(x * 256) / 256
    init = initial_parameters(x, 3, "full", seed=2)
    reference = GaussianMixture(k=3, maxIter=8, tol=0.0).setInitialModel(
        GaussianMixtureModel.fromArrays(init.weights, init.means, init.covariances)
    ).fit(to_dataframe(spark, x))
    if scale > 1:  # far from the origin: offset every value by 1e12
        data, start_means, start_cov, reg = x + scale, init.means + scale, init.covariances, 1e-6
    else:  # tiny values: scale the data and, consistently, regCovar
        data, start_means, start_cov, reg = x * scale, init.means * scale, \
            init.covariances * scale**2, 1e-6 * scale**2
    model = GaussianMixture(k=3, maxIter=8, tol=0.0, regCovar=reg).setInitialModel(
        GaussianMixtureModel.fromArrays(init.weights, start_means, start_cov)
    ).fit(to_dataframe(spark, data))
    if scale > 1:
        np.testing.assert_allclose(model.means - scale, reference.means, atol=1e-3)
        np.testing.assert_allclose(model.covariances, reference.covariances, rtol=1e-6,
                                   atol=1e-9)
    else:
        np.testing.assert_allclose(model.means / scale, reference.means, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(model.covariances / scale**2, reference.covariances,
                                   rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.weights, reference.weights, rtol=1e-8)


def test_five_hundred_dimensions_diag(spark) -> None:
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(2, 500)) * 3
    labels = rng.integers(2, size=600)
    x = centres[labels] + rng.normal(size=(600, 500))
    model = _fit_odd(to_dataframe(spark, x, partitions=2), k=2, covarianceType="diag",
                 initMode="k-means++")
    predictions = np.array([model.predict(row) for row in x])
    agreement = max(np.mean(predictions == labels), np.mean(predictions == 1 - labels))
    assert agreement == 1.0
    assert np.all(np.isfinite(model.summary.logLikelihoodHistory))


def test_very_unequal_cluster_sizes(spark) -> None:
    rng = np.random.default_rng(9)
    x = np.vstack([rng.normal(size=(4950, 2)), rng.normal(size=(50, 2)) + np.array([12.0, 12.0])])
    model = _fit_odd(to_dataframe(spark, x), k=2, tol=1e-6, maxIter=100)
    small = int(np.argmin(model.weights))
    np.testing.assert_allclose(model.weights[small], 0.01, atol=0.002)
    np.testing.assert_allclose(model.means[small], [12.0, 12.0], atol=0.4)
    assert sorted(model.summary.clusterSizes) == [50, 4950]


def test_duplicated_feature_column(spark) -> None:
    df = spark.createDataFrame([([1.0], [2.0])], "features array<double>, f array<double>")
    with pytest.raises(InvalidInputError, match="'features' appears 2 times"):
        _fit_odd(df.select("features", df["f"].alias("features")), k=1)
