"""Passes over a fit's rows on Spark Connect, where a client has no SparkContext, RDDs,
broadcasts or executor-local files, and its executors usually cannot reach it.

The first pass converts the features once into blocks of contiguous float64 rows (one binary
value per block, the weights in another) and counts bad rows and takes the feature moments
on the way, exactly as the classic first pass does (:mod:`.ingest`); the blocks stay on the
server (``persist``). Every later pass is one ``mapInArrow`` over them whose function carries
that pass's mixtures and meta as bytes of the project's wire format (:mod:`.wire`): closures
are pickled when a Connect query runs, so each pass binds its own. A task folds its blocks
with the same :func:`~.statistics_pass.fold_pass` as the classic passes and answers with
one wire message; the client merges them, or, when the answers would be large, the server
merges them in groups first.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial, reduce
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from ..kernels import FeatureMoments, GaussianParameters, merge_all
from .block_store import HANDLE_SCHEMA, StoredPartition
from .input_checks import Block, RowChecks
from .statistics_pass import DistributedStatistics, _inject_test_fault, fold_pass
from .wire import decode, encode
from .worker import prepare_python_worker

logger = logging.getLogger(__name__)

# One schema for both kinds of row the first pass writes: a block (is_block, x, w, n_rows,
# n_features) or the partition's handle (the classic first pass's, with checks and moments).
_BLOCK_FIELDS = [("is_block", pa.bool_()), ("x", pa.binary()), ("w", pa.binary())]
STORED_SCHEMA = pa.schema(_BLOCK_FIELDS + list(HANDLE_SCHEMA))
ANSWER_SCHEMA = "answer binary"
# Rows per stored block: big enough that a pass handles few Python objects per row, small
# enough that one block's temporaries stay small.
CONNECT_BLOCK_ROWS = 1 << 15
# Beyond this many bytes of answers a pass merges them on the server first.
SERVER_MERGE_BYTES = 64 << 20


def is_connect(df: DataFrame) -> bool:
    """True for a DataFrame of a Spark Connect session."""
    try:
        from pyspark.sql.connect.dataframe import DataFrame as ConnectDataFrame
    except ImportError:  # pyspark without the Connect client's dependencies
        return False
    return isinstance(df, ConnectDataFrame)


def is_connect_session(spark: Any) -> bool:
    """True for a Spark Connect session."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError:
        return False
    return isinstance(spark, ConnectSession)


def remove_directory(spark: Any, path: str) -> None:
    """Delete ``path`` recursively through the Connect server (pyspark.ml's own overwrite
    reaches for the classic session's JVM, which a Connect client has not)."""
    from pyspark.ml.util import _remove_dfs_dir

    _remove_dfs_dir(path, spark)


def list_files(spark: Any, path: str) -> list[str]:
    """Every file under ``path`` (recursively) as the server sees it, except the hidden ones
    (``.``/``_`` names, as Spark's own listing skips them); empty when ``path`` is missing."""
    from pyspark.errors import AnalysisException

    try:
        found = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
                 .load(path).select("path").collect())
    except AnalysisException as error:
        if "PATH_NOT_FOUND" in str(error):
            return []
        raise
    return [row.path for row in found]


def default_parallelism(spark: Any) -> int:
    """The session's default parallelism, also on Connect (where there is no
    ``sparkContext``): the partitions of a ``range`` whose split Spark chooses."""
    if not is_connect_session(spark):
        return int(spark.sparkContext.defaultParallelism)
    last = (spark.range(1 << 16).select(F.spark_partition_id().alias("p"))
            .agg(F.max("p")).first()[0])
    return int(last) + 1


def _rechunked(blocks: Iterator[Block]) -> Iterator[Block]:
    # Arrow batches arrive in any size; stored blocks have CONNECT_BLOCK_ROWS rows.
    for x, w in blocks:
        for start in range(0, x.shape[0], CONNECT_BLOCK_ROWS):
            yield (x[start:start + CONNECT_BLOCK_ROWS],
                   None if w is None else w[start:start + CONNECT_BLOCK_ROWS])


def _store_partition(has_weights: bool, batches: Iterator[pa.RecordBatch]
                     ) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    prepare_python_worker()
    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    checks = RowChecks()
    moments: list[FeatureMoments] = []
    n_rows = n_features = 0
    for x, w in _rechunked(checks.blocks(batches, has_weights)):
        moments.append(FeatureMoments.of(x, w))
        n_rows += x.shape[0]
        n_features = x.shape[1]
        yield pa.RecordBatch.from_pylist([{
            "is_block": True, "x": np.ascontiguousarray(x, dtype=np.float64).tobytes(),
            "w": None if w is None else np.ascontiguousarray(w, dtype=np.float64).tobytes(),
            "partition": partition, "n_rows": x.shape[0], "n_features": x.shape[1],
            "has_weights": w is not None}], schema=STORED_SCHEMA)
    handle = StoredPartition(partition, "", n_rows, n_features, has_weights, checks,
                             reduce(FeatureMoments.merge, moments) if moments else None)
    row = handle.to_arrow().to_pylist()[0]
    yield pa.RecordBatch.from_pylist([{"is_block": False, "x": None, "w": None, **row}],
                                     schema=STORED_SCHEMA)


def _blocks(batches: Iterator[pa.RecordBatch]) -> Iterator[Block]:
    # Each stored block as read-only arrays over the Arrow buffers (no copy).
    for batch in batches:
        xs, ws = batch.column("x"), batch.column("w")
        rows, features = batch.column("n_rows"), batch.column("n_features")
        for i in range(batch.num_rows):
            shape = (rows[i].as_py(), features[i].as_py())
            x = np.frombuffer(xs[i].as_buffer(), dtype=np.float64).reshape(shape)
            w = ws[i]
            yield x, None if not w.is_valid else np.frombuffer(w.as_buffer(), dtype=np.float64)


def _answer(message: bytes, center: tuple[float, ...], batches: Iterator[pa.RecordBatch]
            ) -> Iterator[pa.RecordBatch]:
    prepare_python_worker()
    _inject_test_fault()
    request = decode(message)
    mixtures = [v for v in request.values if isinstance(v, GaussianParameters)]
    # Reading the blocks is interleaved with folding them: the time covers both, as the
    # kernel sees them (the JVM's conversion to Arrow runs beside it).
    started = time.perf_counter()
    folded = fold_pass(np.array(center), mixtures, request.meta, _blocks(batches))
    if folded is not None:
        seconds = {"fold_seconds": time.perf_counter() - started}
        yield pa.RecordBatch.from_pylist([{"answer": encode("answer", seconds, folded)}])


def _merge_answers(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    answers = [decode(value.as_py()) for batch in batches for value in batch.column("answer")]
    if answers:
        merged = reduce(merge_all, (a.values for a in answers))
        seconds = {"fold_seconds": sum(a.meta.get("fold_seconds", 0.0) for a in answers)}
        yield pa.RecordBatch.from_pylist([{"answer": encode("answer", seconds, merged)}])


class ConnectStore:
    """A fit's feature blocks kept on a Spark Connect server between passes.

    Parameters
    ----------
    selected : DataFrame
        ``x`` (array<double>) and ``w`` (double or null), as the classic store takes them.
    has_weights : bool
    """

    def __init__(self, selected: DataFrame, has_weights: bool) -> None:
        from pyspark.sql.pandas.types import from_arrow_schema

        self.stored = selected.mapInArrow(partial(_store_partition, has_weights),
                                          from_arrow_schema(STORED_SCHEMA))
        self.stored = self.stored.persist(StorageLevel.MEMORY_AND_DISK)
        self.blocks = self.stored.filter(F.col("is_block")).select(
            "x", "w", "n_rows", "n_features")
        self.n_partitions = 0

    def stored_partitions(self) -> list[StoredPartition]:
        """Every partition's handle, in partition order; the first call converts the rows
        (one Spark job) and keeps the blocks on the server."""
        rows = self.stored.filter(~F.col("is_block")).drop("is_block", "x", "w").collect()
        handles = sorted((StoredPartition.from_row(r) for r in rows),
                         key=lambda h: h.partition)
        self.n_partitions = len(handles)
        return handles

    def close(self) -> None:
        """Release the blocks on the server."""
        try:
            self.stored.unpersist()
        except Exception:  # a failed clean-up must not hide the fit's own outcome
            logger.warning("could not unpersist the fit's blocks", exc_info=True)


def store_on_connect(df: DataFrame, features: Column, weight_col: str | None) -> ConnectStore:
    """:func:`.ingest.store_blocks` for a Spark Connect DataFrame."""
    weight = F.col(f"`{weight_col}`").cast("double") if weight_col else F.lit(None)
    selected = df.select(features.alias("x"), weight.cast("double").alias("w"))
    return ConnectStore(selected, weight_col is not None)


class ConnectStatistics(DistributedStatistics):
    """:class:`DistributedStatistics` on Spark Connect: every pass one ``mapInArrow`` over
    the stored blocks (there are no resident tasks: the executors cannot reach a client)."""

    def __init__(self, store: ConnectStore, center: np.ndarray, depth: int) -> None:
        super().__init__(store, center, depth)  # type: ignore[arg-type]
        self.connect_store = store
        # Where the passes' time went: the client's wall time per query, the tasks' own
        # reading and folding (summed over tasks), the client's decoding and merging.
        self.pass_seconds = {"wall": 0.0, "task_fold": 0.0, "client_merge": 0.0}

    @contextmanager
    def resident(self, n_models: int, n_components: int) -> Iterator[DistributedStatistics]:
        yield self  # every pass is a query of its own

    def _pass(self, mixtures: list[GaussianParameters], meta: dict[str, Any],
              answer_bytes: int = 0) -> list[Any]:
        self.job_passes += 1
        message = encode("pass", meta, mixtures)
        answers = self.connect_store.blocks.mapInArrow(
            partial(_answer, message, tuple(float(c) for c in self.center)), ANSWER_SCHEMA)
        estimate = max(answer_bytes, _statistics_bytes(mixtures, self.center.shape[0]))
        partitions = max(self.connect_store.n_partitions, 1)
        if partitions * estimate > SERVER_MERGE_BYTES and partitions > 4:
            groups = max(2, math.isqrt(partitions))
            answers = answers.repartition(groups).mapInArrow(_merge_answers, ANSWER_SCHEMA)
        started = time.perf_counter()
        rows = answers.collect()
        collected = time.perf_counter()
        messages = [decode(row.answer) for row in rows]
        assert messages, "validation rejects empty input before any pass"
        merged = reduce(merge_all, (m.values for m in messages))
        self.pass_seconds["wall"] += time.perf_counter() - started
        self.pass_seconds["client_merge"] += time.perf_counter() - collected
        self.pass_seconds["task_fold"] += sum(m.meta.get("fold_seconds", 0.0)
                                              for m in messages)
        return merged


def _statistics_bytes(mixtures: Sequence[GaussianParameters], d: int) -> int:
    return sum(8 * m.n_components * (d * d + d + 2) for m in mixtures)
