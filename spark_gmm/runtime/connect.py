"""Passes over a fit's rows on Spark Connect, where a client has no SparkContext, RDDs or
broadcasts, and its executors usually cannot reach it.

The first pass is the classic one (:func:`.ingest.write_blocks`): each task writes its
partition's rows as raw float64 to a file in its executor's Spark local directory, counting
bad rows and taking the feature moments on the way, and returns one handle row; the handles
(not the rows) are persisted on the server. Every later pass is one ``mapInArrow`` over the
handles: Spark runs each task where its cached handle, and so its file, lives, and the task
memory-maps the file (the rows never travel through the JVM again: streamed from Spark's
cache instead, a pass over 1M x 10 rows spent 0.25-0.45 s per task waiting for them). The
function carries that pass's request (:mod:`.requests`) as bytes of the project's wire
format (closures are pickled when a Connect query runs, so each pass binds its own). A task
folds its blocks with the same :func:`~.requests.fold_blocks` as the classic passes and
answers with one wire message; the client merges them, or, when the answers would be
large, the server merges them in groups first.

A task that finds its file missing (the task ran elsewhere, a directory was cleaned) names
its partitions, and the client folds those partitions in a second query straight from the
input, checking them against what the first pass recorded (:class:`PartitionDigest`): an
input that changed under the fit raises :class:`~spark_gmm.errors.InputChangedError`.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from functools import partial, reduce
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, LongType, StructField, StructType
from pyspark.storagelevel import StorageLevel

from ..kernels import FeatureMoments, merge_all
from .block_store import (
    HANDLE_SCHEMA,
    StoredPartition,
    read_partitions,
)
from .digest import PartitionDigest
from .ingest import measured_blocks, selected_rows, write_blocks
from .input_checks import RowChecks
from .passes import PassCounters, StatelessRunner, TaskHook
from .requests import PassRequest, fold_blocks
from .row_store import RowStore, remove_partition_files
from .wire import Message, decode, encode
from .worker import prepare_python_worker

logger = logging.getLogger(__name__)

# A StructType, not a DDL string: a string costs a round trip to the server to parse.
ANSWER_SCHEMA = StructType([StructField("answer", BinaryType(), False)])
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


def _request(message: bytes) -> PassRequest:
    [request] = decode(message).values
    return request


def _answer(message: bytes, center: tuple[float, ...], recorded: dict[int, PartitionDigest],
            hook: TaskHook | None, batches: Iterator[pa.RecordBatch]
            ) -> Iterator[pa.RecordBatch]:
    # A pass over the handles: fold the blocks of the partitions whose files are here.
    prepare_python_worker()
    request = _request(message)
    if hook is not None:
        hook("connect", request)
    handles = [StoredPartition.from_dict(values) for batch in batches
               for values in batch.to_pylist()]
    started = time.perf_counter()
    # A handle Spark recomputed (its executor was lost) read the input again: one whose
    # rows differ from the first pass's counts as missing and goes to the client's check.
    blocks, missing = read_partitions(handles, recorded)
    folded = fold_blocks(request, np.array(center), blocks) if blocks else None
    meta = {"fold_seconds": time.perf_counter() - started, "missing": missing}
    yield pa.RecordBatch.from_pylist([{"answer": encode("answer", meta, folded or [])}])


def _answer_from_input(message: bytes, center: tuple[float, ...], has_weights: bool,
                       batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    # The partitions whose files were missing, folded straight from the input, with the
    # digest of what was read for the client to compare with the first pass's.
    from pyspark import TaskContext

    prepare_python_worker()
    context = TaskContext.get()
    checks = RowChecks()
    moments: list[FeatureMoments] = []
    folded = fold_blocks(_request(message), np.array(center),
                         measured_blocks(batches, has_weights, checks, moments))
    merged = reduce(FeatureMoments.merge, moments) if moments else None
    meta = {"partition": context.partitionId() if context else 0,
            "digest": list(PartitionDigest.of_moments(checks.rows, merged))}
    yield pa.RecordBatch.from_pylist([{"answer": encode("answer", meta, folded or [])}])


def _merge_answers(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    answers = [decode(value.as_py()) for batch in batches for value in batch.column("answer")]
    if answers:
        merged = _merged(answers)
        meta = {"fold_seconds": sum(a.meta.get("fold_seconds", 0.0) for a in answers),
                "missing": [p for a in answers for p in a.meta.get("missing", [])]}
        yield pa.RecordBatch.from_pylist([{"answer": encode("answer", meta, merged or [])}])


def _merged(messages: Sequence[Message]) -> list[Any] | None:
    values = [m.values for m in messages if m.values]
    return reduce(merge_all, values) if values else None


def _remove_files(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    handles = (StoredPartition.from_dict(values) for batch in batches
               for values in batch.to_pylist())
    yield pa.RecordBatch.from_pylist([{"removed": sum(remove_partition_files(handles))}])


class ConnectStore(RowStore):
    """A fit's feature blocks in executor-local files, their handles persisted on a Spark
    Connect server.

    Parameters
    ----------
    selected : DataFrame
        ``x`` (array<double>) and ``w`` (double or null), as the classic store takes them.
    has_weights : bool
    balanced : bool
        Recorded only: a Connect pass is one task per stored partition (the fit balances
        the partitions themselves, see :mod:`.balance`).
    """

    def __init__(self, selected: DataFrame, has_weights: bool, balanced: bool = True
                 ) -> None:
        from pyspark.sql.pandas.types import from_arrow_schema

        super().__init__(selected.mapInArrow(
            partial(write_blocks, uuid.uuid4().hex, has_weights),
            from_arrow_schema(HANDLE_SCHEMA)).persist(StorageLevel.MEMORY_AND_DISK), balanced)
        self.selected = selected
        self.has_weights = has_weights

    def _collect_handles(self) -> list[StoredPartition]:
        return [StoredPartition.from_row(r) for r in self.handles.collect()]

    def _remove_files(self) -> int:
        removed = self.handles.mapInArrow(
            _remove_files, StructType([StructField("removed", LongType())])).collect()
        return sum(r.removed for r in removed)


def store_on_connect(df: DataFrame, features: Column, weight_col: str | None,
                     partitions: int | None = None, balanced: bool = True) -> ConnectStore:
    """:func:`.ingest.store_blocks` for a Spark Connect DataFrame."""
    return ConnectStore(selected_rows(df, features, weight_col, partitions),
                        weight_col is not None, balanced)


class ConnectPassRunner(StatelessRunner):
    """Every pass one ``mapInArrow`` over the stored blocks (there are no resident tasks:
    the executors cannot reach a client).

    Its counters keep where the passes' time went: the client's wall time per query
    (``wall``), the tasks' own reading and folding summed over tasks (``task_fold``), the
    client's decoding and merging (``client_merge``).

    Parameters
    ----------
    store : ConnectStore
    center : ndarray of shape (D,)
    task_hook : callable or None
        See :data:`~.passes.TaskHook`.
    """

    def __init__(self, store: ConnectStore, center: np.ndarray,
                 task_hook: TaskHook | None = None) -> None:
        self.store = store
        self.center = center
        self.task_hook = task_hook
        self.counters = PassCounters(
            pass_seconds={"wall": 0.0, "task_fold": 0.0, "client_merge": 0.0})

    def run(self, request: PassRequest) -> list[Any]:
        self.counters.job_passes += 1
        store = self.store
        self.counters.task_rows = store.partition_rows  # a task per stored partition
        message = encode("pass", {}, [request])
        center = tuple(float(c) for c in self.center)
        answers = store.handles.mapInArrow(
            partial(_answer, message, center, store.recorded, self.task_hook), ANSWER_SCHEMA)
        estimate = request.answer_bytes(self.center.shape[0])
        partitions = max(store.n_partitions, 1)
        if partitions * estimate > SERVER_MERGE_BYTES and partitions > 4:
            groups = max(2, math.isqrt(partitions))
            answers = answers.repartition(groups).mapInArrow(_merge_answers, ANSWER_SCHEMA)
        started = time.perf_counter()
        rows = answers.collect()
        collected = time.perf_counter()
        messages = [decode(row.answer) for row in rows]
        missing = sorted({p for m in messages for p in m.meta.get("missing", [])})
        if missing:
            messages.extend(self._from_input(message, center, missing))
        merged = _merged(messages)
        assert merged is not None, "validation rejects empty input before any pass"
        self.counters.add_seconds("wall", time.perf_counter() - started)
        self.counters.add_seconds("client_merge", time.perf_counter() - collected)
        self.counters.add_seconds("task_fold", sum(m.meta.get("fold_seconds", 0.0)
                                                   for m in messages))
        return merged

    def _from_input(self, message: bytes, center: tuple[float, ...], missing: list[int]
                    ) -> list[Message]:
        store = self.store
        store.recomputed_partitions += len(missing)
        logger.warning("stored blocks of %d of %d partitions were not readable where their "
                       "tasks ran; folding those partitions from the input", len(missing),
                       store.n_partitions)
        rows = (store.selected.filter(F.spark_partition_id().isin(missing))
                .mapInArrow(partial(_answer_from_input, message, center, store.has_weights),
                            ANSWER_SCHEMA).collect())
        messages = [decode(row.answer) for row in rows]
        # Partitions without rows now answer too: their digest shows what they lost; a
        # partition no task answered for has no rows now.
        answered = {int(m.meta["partition"]): PartitionDigest(*m.meta["digest"])
                    for m in messages}
        store.check_unchanged(
            (p, answered.get(p, PartitionDigest(0, 0.0, 0.0, 0.0))) for p in missing)
        return messages
