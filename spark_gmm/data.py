"""Feature columns to validated float64 rows stored on the executors, and passes over them."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator, Sequence
from functools import partial, reduce

import numpy as np
import pyarrow as pa
from pyspark import TaskContext
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import ArrayType, DoubleType, FloatType, NumericType

from .block_store import Block, BlockStore, StoredPartition, write_partition
from .input_checks import InputCounts, InvalidInputError, RowChecks, input_counts
from .worker import prepare_python_worker

logger = logging.getLogger(__name__)


def features_array(df: DataFrame, features_col: str) -> Column:
    """The features column as ``array<double>``, whatever supported type it has.

    Raises
    ------
    InvalidInputError
        The column is missing or of an unsupported type.
    """
    if features_col not in df.columns:
        raise InvalidInputError(
            f"features column {features_col!r} not found; available columns: "
            f"{', '.join(df.columns)}. Set featuresCol to the column that holds the features."
        )
    if df.columns.count(features_col) > 1:
        raise InvalidInputError(
            f"features column {features_col!r} appears {df.columns.count(features_col)} times "
            "in the input; rename or drop the duplicates"
        )
    data_type = df.schema[features_col].dataType
    column = F.col(f"`{features_col}`")
    if isinstance(data_type, VectorUDT):
        # vector_to_array fails on null vectors instead of returning null.
        return F.when(column.isNotNull(), vector_to_array(column, "float64"))
    if isinstance(data_type, ArrayType) and isinstance(data_type.elementType, DoubleType):
        return column
    if isinstance(data_type, ArrayType) and isinstance(
        data_type.elementType, (FloatType, NumericType)
    ):
        return column.cast(ArrayType(DoubleType()))
    raise InvalidInputError(
        f"features column {features_col!r} has type {data_type.simpleString()}; expected an "
        "ml Vector, array<double> or array<float>. Assemble numeric columns with "
        "pyspark.ml.feature.VectorAssembler or F.array(...)."
    )


def check_weight_column(df: DataFrame, weight_col: str | None) -> None:
    """Raise unless ``weight_col`` is unset or names one numeric column of ``df``."""
    if weight_col is None:
        return
    if weight_col not in df.columns:
        raise InvalidInputError(
            f"weight column {weight_col!r} not found; available columns: "
            f"{', '.join(df.columns)}. Unset weightCol or name an existing column."
        )
    if not isinstance(df.schema[weight_col].dataType, NumericType):
        raise InvalidInputError(
            f"weight column {weight_col!r} has type "
            f"{df.schema[weight_col].dataType.simpleString()}; it must be numeric"
        )


# One row per partition: where its rows were written, what was counted about them, and the
# weighted moments of the features (null for a partition without rows).
_CHECK_FIELDS = len(dataclasses.fields(RowChecks))
_WRITTEN_SCHEMA = pa.schema(
    [("partition", pa.int64()), ("directory", pa.string()), ("n_rows", pa.int64()),
     ("n_features", pa.int64()), ("has_weights", pa.bool_())]
    + [(f.name, pa.float64() if f.type in ("float", float) else pa.int64())
       for f in dataclasses.fields(RowChecks)]
    + [("moment_weight", pa.float64()), ("moment_mean", pa.list_(pa.float64())),
       ("moment_scatter", pa.list_(pa.float64()))]
)


def _write_blocks(store_id: str, has_weights: bool, batches: Iterator[pa.RecordBatch]
                  ) -> Iterator[pa.RecordBatch]:
    prepare_python_worker()
    context = TaskContext.get()
    assert context is not None, "runs inside a Spark task"
    checks = RowChecks()
    moments = _RunningMoments()
    stored = write_partition(store_id, context.partitionId(),
                             moments.observe(checks.blocks(batches, has_weights)))
    weight, mean, scatter = moments.value or (None, None, None)
    row = {**stored._asdict(), **dataclasses.asdict(checks), "moment_weight": weight,
           "moment_mean": None if mean is None else mean.tolist(),
           "moment_scatter": None if scatter is None else scatter.tolist()}
    del row["checks"]  # the counts and moments travel as columns of their own
    yield pa.RecordBatch.from_pylist([row], schema=_WRITTEN_SCHEMA)


def store_blocks(df: DataFrame, features: Column, weight_col: str | None) -> BlockStore:
    """Convert the features once into contiguous float64 rows kept for every EM pass.

    The first pass over the store writes each partition's rows straight from the Arrow
    batches of the input (see :mod:`spark_gmm.block_store`) and on the way counts bad rows
    (see :func:`stored_input_counts`) and takes the features' moments (see
    :func:`feature_moments`). The caller closes the store.
    """
    weight = F.col(f"`{weight_col}`").cast("double") if weight_col else F.lit(None)
    selected = df.select(features.alias("x"), weight.cast("double").alias("w"))
    written = selected.mapInArrow(
        partial(_write_blocks, uuid.uuid4().hex, weight_col is not None),
        from_arrow_schema(_WRITTEN_SCHEMA),
    )
    return BlockStore(written.rdd)


def stored_input_counts(partitions: Sequence[StoredPartition], features_col: str,
                        weight_col: str | None) -> InputCounts:
    """Validate the input from what the writing pass counted (``store.stored_partitions()``).

    Raises
    ------
    InvalidInputError
        See :func:`spark_gmm.input_checks.input_counts`; raised before any EM work.
    """
    checks = reduce(RowChecks.merge,
                    (RowChecks(*p.checks[:_CHECK_FIELDS]) for p in partitions), RowChecks())
    return input_counts(checks, features_col, weight_col)


# --- partition-invariant random choice of rows ------------------------------------------------
# Each row gets a pseudo-random key from its own values and the seed, so the rows chosen do
# not depend on how the data are partitioned or ordered.

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def row_keys(x: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit pseudo-random key per row, a pure function of the row's values and ``seed``."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    keys = _splitmix64(np.full(x.shape[0], np.uint64(seed & 0xFFFFFFFFFFFFFFFF)))
    for column in range(x.shape[1]):
        keys = _splitmix64(keys ^ bits[:, column])
    return keys


def _smallest_keys(size: int, distinct: bool, keys: np.ndarray, rows: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    if distinct:
        keys, first = np.unique(keys, return_index=True)
        rows = rows[first]
    # Equal keys belong to equal rows (up to 2⁻⁶⁴ collisions), so ties need no order.
    order = np.argsort(keys, kind="stable")[:size]
    return keys[order], rows[order]


Sample = tuple[np.ndarray, np.ndarray]


def _partition_sample(seed: int, size: int, distinct: bool, blocks: Iterator[Block]
                      ) -> Sample | None:
    best: Sample | None = None
    for x, _ in blocks:
        candidate = _smallest_keys(size, distinct, row_keys(x, seed), x)
        best = candidate if best is None else _merge_samples(size, distinct, best, candidate)
    return best


def _merge_samples(size: int, distinct: bool, a: Sample, b: Sample) -> Sample:
    return _smallest_keys(size, distinct, np.concatenate([a[0], b[0]]),
                          np.concatenate([a[1], b[1]]))


def sample_rows(store: BlockStore, size: int, seed: int, distinct: bool, depth: int
                ) -> np.ndarray:
    """Up to ``size`` rows chosen pseudo-randomly and identically for any partitioning.

    With ``distinct`` no two returned rows are equal. Memory on the driver and in each
    reduce step stays at ``size`` rows.
    """
    sample = store.aggregate(partial(_partition_sample, seed, size, distinct),
                             partial(_merge_samples, size, distinct), depth)
    assert sample is not None, "validation rejects empty input before sampling"
    return sample[1]


# --- weighted mean and variance in one pass ---------------------------------------------------

Moments = tuple[float, np.ndarray, np.ndarray]


def _block_moments(x: np.ndarray, w: np.ndarray | None) -> Moments:
    weights = np.ones(x.shape[0]) if w is None else w
    total = float(weights.sum())
    if total <= 0:
        return 0.0, np.zeros(x.shape[1]), np.zeros(x.shape[1])
    mean = weights @ x / total
    diff = x - mean
    return total, mean, weights @ (diff * diff)


def _merge_moments(a: Moments, b: Moments) -> Moments:
    # Chan et al.'s pairwise update: exact for any split, no raw-moment cancellation.
    total = a[0] + b[0]
    if total <= 0:
        return a
    delta = b[1] - a[1]
    mean = a[1] + delta * (b[0] / total)
    return total, mean, a[2] + b[2] + delta * delta * (a[0] * b[0] / total)


class _RunningMoments:
    """The moments of the blocks that pass through :meth:`observe` (None before any)."""

    def __init__(self) -> None:
        self.value: Moments | None = None

    def observe(self, blocks: Iterator[Block]) -> Iterator[Block]:
        for x, w in blocks:
            moments = _block_moments(x, w)
            self.value = moments if self.value is None else _merge_moments(self.value, moments)
            yield x, w


def feature_moments(partitions: Sequence[StoredPartition]) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and (biased) variance of every feature, shapes (D,) and (D,).

    Merged from the moments each writing task took of its rows on the way to the file, so
    they cost no pass of their own. Call after validation (it guarantees rows).
    """
    moments = [(weight, np.asarray(mean), np.asarray(scatter))
               for weight, mean, scatter in (p.checks[_CHECK_FIELDS:] for p in partitions)
               if mean is not None]
    total, mean, scatter = reduce(_merge_moments, moments)
    return mean, scatter / total
