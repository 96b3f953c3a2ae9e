"""Bad input gets a clear error naming the column, the count and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import GaussianMixture, InvalidInputError
from tests.helpers import make_mixture, to_dataframe

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
