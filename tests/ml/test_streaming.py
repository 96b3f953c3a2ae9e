"""``transform`` on rows read from files, batch and streaming: a Structured Streaming query
labels each row as a batch transform does, and both match scipy's densities."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from spark_gmm import GaussianMixtureModel
from spark_gmm.runtime.ingest import COLUMNAR_ARROW_INPUT

WEIGHTS = np.array([0.3, 0.7])
MEANS = np.array([[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]])
COVARIANCES = np.array([np.eye(3), [[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.5]]])


@pytest.fixture
def columnar_input_default(spark) -> Iterator[None]:
    """The session as Spark 4.3 starts it: Arrow UDFs fed columnar batches from file scans
    (the setting under which vector columns failed)."""
    spark.conf.unset(COLUMNAR_ARROW_INPUT)
    yield
    spark.conf.unset(COLUMNAR_ARROW_INPUT)


@pytest.fixture
def rows_on_disk(spark, tmp_path) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(3)
    x = np.vstack([rng.multivariate_normal(m, c, 60) for m, c in zip(MEANS, COVARIANCES)])
    # A second vector column rides along: any vector column among the rows broke the UDF.
    frame = spark.createDataFrame(
        [(i, Vectors.dense(row), Vectors.sparse(2, [0], [float(i)])) for i, row in enumerate(x)],
        ["id", "features", "extra"])
    path = str(tmp_path / "rows")
    frame.repartition(3).write.parquet(path)
    return path, x


def _reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    log_joint = np.column_stack([np.log(w) + multivariate_normal(m, c).logpdf(x)
                                 for w, m, c in zip(WEIGHTS, MEANS, COVARIANCES)])
    log_probability = log_joint - logsumexp(log_joint, axis=1, keepdims=True)
    return np.exp(log_probability).argmax(axis=1), np.exp(log_probability)


def _by_id(rows, n: int) -> tuple[np.ndarray, np.ndarray]:
    ordered = sorted(rows, key=lambda row: row["id"])
    assert [row["id"] for row in ordered] == list(range(n))
    return (np.array([row["prediction"] for row in ordered]),
            np.array([row["probability"].toArray() for row in ordered]))


def _model() -> GaussianMixtureModel:
    return GaussianMixtureModel.fromArrays(WEIGHTS, MEANS, COVARIANCES)


def test_transform_labels_vector_rows_read_from_parquet(
        spark, rows_on_disk, columnar_input_default) -> None:
    path, x = rows_on_disk
    scored = _model().transform(spark.read.parquet(path))
    prediction, probability = _by_id(scored.collect(), len(x))
    expected_prediction, expected_probability = _reference(x)
    np.testing.assert_array_equal(prediction, expected_prediction)
    np.testing.assert_allclose(probability, expected_probability, rtol=1e-9, atol=1e-12)
    assert spark.conf.get(COLUMNAR_ARROW_INPUT) == "false"


def test_transform_leaves_the_setting_alone_without_vector_columns(
        spark, rows_on_disk, columnar_input_default) -> None:
    from pyspark.ml.functions import vector_to_array

    path, x = rows_on_disk
    arrays = spark.read.parquet(path).select("id", vector_to_array("features").alias("f"))
    scored = _model().setFeaturesCol("f").transform(arrays)
    np.testing.assert_array_equal(_by_id(scored.collect(), len(x))[0], _reference(x)[0])
    assert spark.conf.get(COLUMNAR_ARROW_INPUT) == "true"


def test_a_streaming_query_labels_rows_as_a_batch_transform_does(
        spark, rows_on_disk, columnar_input_default, tmp_path) -> None:
    path, x = rows_on_disk
    model = _model().setLogLikelihoodCol("log_likelihood")
    stream = spark.readStream.schema(spark.read.parquet(path).schema).parquet(path)
    assert stream.isStreaming
    query = (model.transform(stream).writeStream.format("memory")
             .queryName("streamed_labels").trigger(availableNow=True)
             .option("checkpointLocation", os.fspath(tmp_path / "checkpoint")).start())
    try:
        query.awaitTermination(120)
    finally:
        query.stop()
    assert query.exception() is None
    streamed = spark.sql("SELECT * FROM streamed_labels").collect()
    batch = model.transform(spark.read.parquet(path)).collect()
    prediction, probability = _by_id(streamed, len(x))
    batch_prediction, batch_probability = _by_id(batch, len(x))
    np.testing.assert_array_equal(prediction, batch_prediction)
    np.testing.assert_array_equal(probability, batch_probability)
    np.testing.assert_array_equal(prediction, _reference(x)[0])
    streamed_ll = np.array([row["log_likelihood"] for row in
                            sorted(streamed, key=lambda row: row["id"])])
    expected_ll = logsumexp(np.column_stack([
        np.log(w) + multivariate_normal(m, c).logpdf(x)
        for w, m, c in zip(WEIGHTS, MEANS, COVARIANCES)]), axis=1)
    np.testing.assert_allclose(streamed_ll, expected_ll, rtol=1e-10)
