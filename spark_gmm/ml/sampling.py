"""Rows drawn from a fitted mixture on the executors, as a DataFrame."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..kernels import GaussianParameters
from ..kernels.generate import sample_mixture

_SCHEMA = "features array<double>, label int"
NoiseBox = tuple[np.ndarray, np.ndarray]  # lower and upper corners [D]


def partition_rows(n: int, num_partitions: int) -> np.ndarray:
    """How many of the ``n`` rows partition i draws: the first ``n mod p`` get one more."""
    return np.diff(np.linspace(0, n, num_partitions + 1).astype(np.int64))


def _draw_partitions(params: GaussianParameters, seed: int, counts: np.ndarray,
                     batches: Iterator[pa.RecordBatch], box: NoiseBox | None
                     ) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for index in batch.column(0).to_numpy():
            # Seeded by (seed, partition index): the rows do not depend on where, or on how
            # many executors, the partitions run.
            rng = np.random.default_rng([seed, int(index)])
            x, labels = sample_mixture(params, int(counts[index]), rng, box)
            offsets = pa.array(np.arange(x.shape[0] + 1, dtype=np.int32) * x.shape[1])
            yield pa.RecordBatch.from_arrays(
                [pa.ListArray.from_arrays(offsets, pa.array(x.ravel())),
                 pa.array(labels.astype(np.int32))], names=["features", "label"])


def sample_data_frame(spark: SparkSession, params: GaussianParameters, n: int, seed: int,
                      num_partitions: int, box: NoiseBox | None = None) -> DataFrame:
    """``n`` rows of the mixture in ``num_partitions`` partitions: columns ``features``
    (vector) and ``label`` (the component drawn from; −1: the noise component, uniform in
    ``box``).

    Partition i draws its share (:func:`partition_rows`) with a generator seeded by
    ``(seed, i)``: the same arguments give the same rows on any cluster.
    """
    if n < 0 or num_partitions < 1:
        raise ValueError(f"need n ≥ 0 and numPartitions ≥ 1; got n={n}, "
                         f"numPartitions={num_partitions}")
    counts = partition_rows(n, num_partitions)
    indices = spark.range(0, num_partitions, 1, num_partitions)

    def draw(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return _draw_partitions(params, seed, counts, batches, box)

    drawn = indices.mapInArrow(draw, _SCHEMA)
    return drawn.select(array_to_vector(F.col("features")).alias("features"), "label")
