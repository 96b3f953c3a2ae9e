"""Ingest: the features column to validated float64 rows stored on the executors, in one pass.

The first pass of a fit reads the input once: each partition's Arrow batches are counted for
bad rows (:mod:`.input_checks`), their feature moments taken, and their rows written to an
executor-local file (:mod:`.block_store`). What each task counted and measured comes back in
its partition's handle; the driver merges it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from functools import partial, reduce

import pyarrow as pa
from pyspark import TaskContext
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import (
    ArrayType,
    DataType,
    DoubleType,
    FloatType,
    MapType,
    NumericType,
    StructType,
    UserDefinedType,
)

from ..errors import InvalidInputError
from ..kernels import FeatureMoments
from .block_store import HANDLE_SCHEMA, BlockStore, StoredPartition, write_partition
from .input_checks import Block, InputCounts, RowChecks, input_counts
from .worker import prepare_python_worker

logger = logging.getLogger(__name__)


# Spark 4.3 feeds Arrow UDFs from columnar scans (Parquet, ORC, file streams) through a
# row-to-column converter that has no case for user-defined types: any vector column among
# the rows fails the UDF with UNSUPPORTED_DATATYPE, whichever column the UDF reads.
COLUMNAR_ARROW_INPUT = "spark.sql.execution.arrow.pythonUDF.columnarInput.enabled"


def _has_user_type(data_type: DataType) -> bool:
    if isinstance(data_type, UserDefinedType):
        return True
    if isinstance(data_type, StructType):
        return any(_has_user_type(field.dataType) for field in data_type.fields)
    if isinstance(data_type, ArrayType):
        return _has_user_type(data_type.elementType)
    if isinstance(data_type, MapType):
        return _has_user_type(data_type.keyType) or _has_user_type(data_type.valueType)
    return False


def allow_arrow_udf_over(df: DataFrame) -> None:
    """Make an Arrow UDF over ``df`` runnable when ``df`` holds a vector (or other
    user-defined type) column: turn off the session's columnar Arrow UDF input, which cannot
    carry such columns (:data:`COLUMNAR_ARROW_INPUT`). The UDF then reads rows, as before
    Spark 4.3. Logged once per session when it changes the setting."""
    if not _has_user_type(df.schema):
        return
    conf = df.sparkSession.conf
    try:  # without a default: conf.get(key, default) returns the default for an unset key
        enabled = str(conf.get(COLUMNAR_ARROW_INPUT)).lower() == "true"
    except Exception:  # a Spark before 4.3, which has no such setting
        return
    if not enabled:
        return
    conf.set(COLUMNAR_ARROW_INPUT, "false")
    logger.info("set %s = false for this session: its columnar input to Arrow UDFs cannot "
                "carry the vector columns of this DataFrame", COLUMNAR_ARROW_INPUT)


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


def measured_blocks(batches: Iterator[pa.RecordBatch], has_weights: bool, checks: RowChecks,
                    moments: list[FeatureMoments]) -> Iterator[Block]:
    """The batches as blocks, counted into ``checks`` and measured into ``moments`` (one
    per block; merge them once the blocks are consumed)."""
    for x, w in checks.blocks(batches, has_weights):
        moments.append(FeatureMoments.of(x, w))
        yield x, w


def write_blocks(store_id: str, has_weights: bool, batches: Iterator[pa.RecordBatch]
                 ) -> Iterator[pa.RecordBatch]:
    """The first pass's task: write the partition's rows to a local file, count bad rows and
    take the moments on the way, and yield the partition's handle (one row)."""
    prepare_python_worker()
    context = TaskContext.get()
    assert context is not None, "runs inside a Spark task"
    checks = RowChecks()
    moments: list[FeatureMoments] = []
    stored = write_partition(store_id, context.partitionId(),
                             measured_blocks(batches, has_weights, checks, moments))
    merged = reduce(FeatureMoments.merge, moments) if moments else None
    yield stored._replace(checks=checks, moments=merged).to_arrow()


def selected_rows(df: DataFrame, features: Column, weight_col: str | None,
                  partitions: int | None = None) -> DataFrame:
    """``x`` (the features as ``array<double>``) and ``w`` (the weight, or null) of every
    row; with ``partitions``, spread evenly over that many partitions (a round-robin
    shuffle: see :mod:`.balance`)."""
    weight = F.col(f"`{weight_col}`").cast("double") if weight_col else F.lit(None)
    selected = df.select(features.alias("x"), weight.cast("double").alias("w"))
    return selected if partitions is None else selected.repartition(partitions)


def store_blocks(df: DataFrame, features: Column, weight_col: str | None,
                 partitions: int | None = None, balanced: bool = True) -> BlockStore:
    """Convert the features once into contiguous float64 rows kept for every EM pass.

    The first pass over the store writes each partition's rows straight from the Arrow
    batches of the input (see :mod:`spark_gmm.block_store`) and on the way counts bad rows
    (see :func:`stored_input_counts`) and takes the features' moments (see
    :func:`feature_moments`). With ``partitions``, the rows are first spread evenly over
    that many partitions. ``balanced``: see :class:`~.row_store.RowStore`. The caller
    closes the store.
    """
    written = selected_rows(df, features, weight_col, partitions).mapInArrow(
        partial(write_blocks, uuid.uuid4().hex, weight_col is not None),
        from_arrow_schema(HANDLE_SCHEMA),
    )
    return BlockStore(written.rdd, balanced)


def stored_input_counts(partitions: Sequence[StoredPartition], features_col: str,
                        weight_col: str | None, marginalize: bool = False) -> InputCounts:
    """Validate the input from what the writing pass counted (``store.stored_partitions()``);
    with ``marginalize``, NaN and null elements are missing features.

    Raises
    ------
    InvalidInputError
        See :func:`.input_checks.input_counts`; raised before any EM work.
    """
    checks = reduce(RowChecks.merge, (p.checks for p in partitions if p.checks), RowChecks())
    counts = input_counts(checks, features_col, weight_col, marginalize)
    if marginalize:
        incomplete = counts.incomplete_by_missing
        logger.info("%d rows: %d complete, %d with missing features (by number missing: %s)",
                    counts.n_rows, counts.n_rows - sum(incomplete), sum(incomplete),
                    ", ".join(f"{i + 1}: {n}" for i, n in enumerate(incomplete) if n) or "none")
    return counts


def feature_moments(partitions: Sequence[StoredPartition]) -> FeatureMoments:
    """The weighted moments of every feature (mean, variance) over all stored rows.

    Merged from the moments each writing task took of its rows on the way to the file, so
    they cost no pass of their own. Call after validation (it guarantees rows).
    """
    return reduce(FeatureMoments.merge,
                  (p.moments for p in partitions if p.moments is not None))
