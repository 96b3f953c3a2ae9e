"""Feature blocks kept in executor-local files between passes and memory-mapped by the tasks.

EM reads the same rows every iteration. Kept in Spark's cache they would be streamed from
the JVM to the Python worker and unpickled on every pass (two copies of every byte, and the
JVM competing with the kernel for the cores: measured 0.38 s versus 0.29 s per pass of
1M × 10 rows on 2 cores, medians of 9 interleaved passes). Instead, the first pass writes
each partition's rows once, as raw float64, into a file under the executor's Spark local
directory (``SPARK_LOCAL_DIRS``: Spark deletes it when the executor stops) and Spark caches
only a small handle per partition. Every later pass runs on the cached handles, so Spark
schedules each task where its handle, and therefore its file, lives; the task memory-maps
the file (no copy; the page cache keeps it hot).

Nothing here can make a result wrong. A task that finds its file missing or of the wrong
size (executor lost, directory cleaned, task scheduled elsewhere) reports its partition as
missing, and the driver recomputes exactly those partitions in a second job through the
handles' own lineage, uncached: the task writes the partition again where it runs and folds
it there; the count is logged. A lost executor also loses its cached handles, which Spark
then recomputes, writing the files again on a live executor.

A recomputed partition is read again from the input, which may have changed since the first
pass (a Parquet file overwritten upstream). Every pass therefore checks each partition it
folds against what the first pass recorded of it (row count, weight sum and feature means,
:class:`PartitionDigest`), and the driver raises :class:`~spark_gmm.errors.InputChangedError`
naming the partition when they differ, instead of mixing old and new rows.
"""

from __future__ import annotations

import dataclasses
import logging
import mmap
import os
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pyarrow as pa
from pyspark import RDD, StorageLevel
from pyspark.sql import Row

from ..kernels import FeatureMoments
from .balance import Slice, TaskLayout
from .digest import PartitionDigest
from .files import AtomicFile
from .input_checks import Block, RowChecks, check_fields
from .row_store import RowStore, remove_partition_files
from .worker import prepare_python_worker

logger = logging.getLogger(__name__)

T = TypeVar("T")
PartitionFunction = Callable[[Iterator[Block]], "T | None"]

# Rows per block handed to partition functions: the kernels chunk further inside; bigger
# blocks only mean bigger temporaries in the functions that work per block.
BLOCK_ROWS = 1 << 16
_DIRECTORY_PREFIX = "spark-gmm-blocks-"


class StoredPartition(NamedTuple):
    """Where one partition's rows were written, how many there are, and what the writing
    task counted (bad rows) and measured (feature moments) on the way."""

    partition: int
    directory: str
    n_rows: int
    n_features: int
    has_weights: bool
    checks: RowChecks | None = None  # set by the writing task
    moments: FeatureMoments | None = None  # None for a partition without rows
    host: str = ""  # the name of the machine whose local directory holds the files

    @property
    def features_path(self) -> str:
        return os.path.join(self.directory, f"part-{self.partition:05d}.features")

    @property
    def weights_path(self) -> str:
        return os.path.join(self.directory, f"part-{self.partition:05d}.weights")

    def to_arrow(self) -> pa.RecordBatch:
        """This handle as the one-row batch a writing task returns (:data:`HANDLE_SCHEMA`)."""
        moments = self.moments
        assert self.checks is not None, "the writing task counts its rows"
        row: dict[str, Any] = {
            **{name: getattr(self, name) for name in _LOCATION_FIELDS},
            **{f"checks_{name}": value for name, value in dataclasses.asdict(self.checks).items()},
            "moments_weight": None if moments is None else moments.weight,
            **{f"moments_{name}": None if getattr(moments, name, None) is None
               else getattr(moments, name).tolist() for name in _MOMENT_ARRAYS},
            "host": self.host,
        }
        return pa.RecordBatch.from_pylist([row], schema=HANDLE_SCHEMA)

    @classmethod
    def from_row(cls, row: Row) -> StoredPartition:
        """The handle a writing task returned, read back by field name."""
        return cls.from_dict(row.asDict())

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StoredPartition:
        """The handle from its fields (a Spark Row's, or an Arrow batch's ``to_pylist``)."""
        checks = RowChecks(**{f.name: values[f"checks_{f.name}"]
                              for f in dataclasses.fields(RowChecks)})
        arrays = [values.get(f"moments_{name}") for name in _MOMENT_ARRAYS]
        moments = None if arrays[0] is None else FeatureMoments(
            values["moments_weight"], *(None if a is None else np.array(a) for a in arrays))
        return cls(*(values[name] for name in _LOCATION_FIELDS), checks=checks, moments=moments,
                   host=values.get("host") or "")

    def location(self) -> StoredPartition:
        """Where the rows are, without the writing task's counts and moments (what readers
        need)."""
        return self._replace(checks=None, moments=None)


_LOCATION_FIELDS = ("partition", "directory", "n_rows", "n_features", "has_weights")
_MOMENT_ARRAYS = ("mean", "scatter", "minimum", "maximum", "observed")  # in field order
HANDLE_SCHEMA = pa.schema(
    [("partition", pa.int64()), ("directory", pa.string()), ("n_rows", pa.int64()),
     ("n_features", pa.int64()), ("has_weights", pa.bool_())]
    + [(f"checks_{name}", arrow_type) for name, arrow_type in check_fields()]
    + [("moments_weight", pa.float64())] + [(f"moments_{name}", pa.list_(pa.float64()))
                                           for name in _MOMENT_ARRAYS] + [("host", pa.string())]
)


def _local_directory(store_id: str, partition: int) -> str:
    # The executor's block manager directories, which Spark removes when the executor stops.
    roots = [d for d in os.environ.get("SPARK_LOCAL_DIRS", "").split(",") if d]
    root = roots[partition % len(roots)] if roots else tempfile.gettempdir()
    return os.path.join(root, _DIRECTORY_PREFIX + store_id)


def write_partition(store_id: str, partition: int, blocks: Iterator[Block]) -> StoredPartition:
    """Write one partition's blocks under this executor's local directory (in a task).

    Raises
    ------
    OSError
        The files cannot be written (disk full, directory not writable); the message names
        the directory and the space the fit needs.
    """
    directory = _local_directory(store_id, partition)
    try:
        return _write_files(StoredPartition(partition, directory, 0, 0, False,
                                            host=socket.gethostname()), blocks)
    except OSError as error:
        raise OSError(
            f"could not store the features of partition {partition} under {directory}: "
            f"{error}. The fit keeps its features (rows x features x 8 bytes) on the "
            "executors' local disks: free space there or point spark.local.dir elsewhere"
        ) from error


def _write_files(names: StoredPartition, blocks: Iterator[Block]) -> StoredPartition:
    os.makedirs(names.directory, exist_ok=True)
    # Never rewritten in place: a retried or speculative attempt may write the partition
    # again while another task has the old file mapped, and replacing keeps that mapping valid.
    features = AtomicFile(names.features_path, durable=False)
    weights = AtomicFile(names.weights_path, durable=False)
    n_rows = n_features = 0
    has_weights = False
    try:
        for x, w in blocks:
            n_rows += x.shape[0]
            n_features = x.shape[1]
            features.stream.write(memoryview(np.ascontiguousarray(x, dtype=np.float64)))
            if w is not None:
                has_weights = True
                weights.stream.write(memoryview(np.ascontiguousarray(w, dtype=np.float64)))
        for stream, used in ((features, n_rows > 0), (weights, has_weights)):
            if used:
                stream.commit()
            else:
                stream.abort()
    except BaseException:
        features.abort()
        weights.abort()
        raise
    return names._replace(n_rows=n_rows, n_features=n_features, has_weights=has_weights)


def _map_file(path: str, n_values: int) -> np.ndarray | None:
    try:
        with open(path, "rb") as stream:
            if os.fstat(stream.fileno()).st_size != 8 * n_values:
                return None
            mapping = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError:
        return None
    # The array keeps the mapping alive; both go when the task drops its blocks.
    return np.frombuffer(mapping, dtype=np.float64)


def read_stored_partition(stored: StoredPartition, first: int = 0, stop: int | None = None
                          ) -> list[Block] | None:
    """The partition's rows (``[first, stop)`` of them: a slice) as read-only blocks of up
    to ``BLOCK_ROWS`` rows, or None when its files are missing or incomplete on this
    machine."""
    stop = stored.n_rows if stop is None else stop
    if stop <= first:
        return []
    x = _map_file(stored.features_path, stored.n_rows * stored.n_features)
    w = _map_file(stored.weights_path, stored.n_rows) if stored.has_weights else None
    if x is None or (stored.has_weights and w is None):
        return None
    x = x.reshape(stored.n_rows, stored.n_features)
    return [(x[start:min(start + BLOCK_ROWS, stop)],
             None if w is None else w[start:min(start + BLOCK_ROWS, stop)])
            for start in range(first, stop, BLOCK_ROWS)]


def read_slices(slices: Iterable[Slice], stored: dict[int, StoredPartition]
                ) -> tuple[list[Block], list[Slice]]:
    """The blocks of the slices readable here (``stored``: handles by partition), and the rest."""
    blocks: list[Block] = []
    missing: list[Slice] = []
    for piece in slices:
        readable = read_stored_partition(stored[piece.partition], piece.start, piece.stop)
        if readable is None:
            missing.append(piece)
        else:
            blocks.extend(readable)
    return blocks, missing


def read_partitions(handles: Iterable[StoredPartition],
                    recorded: dict[int, PartitionDigest] | None = None
                    ) -> tuple[list[Block], list[int]]:
    """The blocks of every partition readable here, and the partitions that are not.

    With ``recorded``, a partition whose handle Spark recomputed (read from the input again)
    and that differs from the first pass's reading counts as not readable: the driver's
    recomputation then names it (see :class:`PartitionDigest`).
    """
    blocks: list[Block] = []
    missing: list[int] = []
    for stored in handles:
        first = (recorded or {}).get(stored.partition)
        if first is not None and first.differs(PartitionDigest.of(stored)):
            missing.append(stored.partition)
            continue
        readable = read_stored_partition(stored)
        if readable is None:
            missing.append(stored.partition)
        else:
            blocks.extend(readable)
    return blocks, missing


def read_task(handles: Iterable[Any], recorded: dict[int, PartitionDigest],
              layout: dict[int, tuple[int, tuple[Slice, ...]]] | None,
              locations: dict[int, StoredPartition], index: int
              ) -> tuple[int, list[Block], list[int]]:
    """What the task of RDD partition ``index`` reads: (its task number, its blocks, the
    partitions it cannot read). Without ``layout``, the partitions of its ``handles`` (see
    :func:`read_partitions`); with it, its slices (``handles`` then holds the cached handle
    that placed the task: see :meth:`~.balance.TaskLayout.rdd`)."""
    if layout is None:
        return (index, *read_partitions(handles, recorded))
    for _ in handles:
        pass
    task, slices = layout[index]
    blocks, lost = read_slices(slices, locations)
    return task, blocks, sorted({piece.partition for piece in lost})


# The outcome of one task: the rows it could not read (whole partitions by index, or
# slices), and what the rest folded to.
Outcome = tuple[list[Any], "T | None"]


def _on_stored(function: PartitionFunction, recorded: dict[int, PartitionDigest], index: int,
               handles: Iterator[StoredPartition]) -> Iterator[Outcome]:
    prepare_python_worker()
    # A handle Spark recomputed (its executor was lost) read the input again: a partition
    # whose rows differ from the first pass's goes to the driver's recomputation, which
    # names it.
    blocks, missing = read_partitions(handles, recorded)
    if missing:
        yield [index], None  # the RDD index of this task's partition, for recomputation
        return
    yield [], function(iter(blocks)) if blocks else None


def _on_slices(function: PartitionFunction, layout: dict[int, tuple[int, tuple[Slice, ...]]],
               stored: dict[int, StoredPartition], index: int, anchors: Iterator[Any]
               ) -> Iterator[Outcome]:
    # A task of a sliced layout (see TaskLayout.rdd): its slices, whatever its anchor.
    for _ in anchors:  # read the anchor's cached handle, which placed the task
        pass
    if index not in layout:
        return
    prepare_python_worker()
    # The slices lost here are recomputed alone (see BlockStore.aggregate): fold the rest.
    blocks, missing = read_slices(layout[index][1], stored)
    yield missing, function(iter(blocks)) if blocks else None


def _on_rewritten(function: PartitionFunction, ranges: dict[int, list[tuple[int, int]]],
                  index: int, handles: Iterator[StoredPartition]
                  ) -> Iterator[tuple[list[int], list[StoredPartition], Any]]:
    # The recomputation: the partition written again from the input, folded (only the row
    # ranges in ``ranges``, when the lost rows were slices of it), and its handles sent back
    # so that the driver can compare them with the first pass's.
    handles = list(handles)
    if index not in ranges:
        for missing, value in _on_stored(function, {}, index, iter(handles)):
            yield missing, handles, value
        return
    pieces = [Slice(h.partition, start, stop) for h in handles for start, stop in ranges[index]]
    blocks, lost = read_slices(pieces, {h.partition: h for h in handles})
    yield ([index] if lost else []), handles, function(iter(blocks)) if blocks else None


def _merge_values(merge: Callable[[T, T], T], a: T | None, b: T | None) -> T | None:
    if a is None:
        return b
    return a if b is None else merge(a, b)


def _merge_outcomes(merge: Callable[[T, T], T], a: Outcome, b: Outcome) -> Outcome:
    return a[0] + b[0], _merge_values(merge, a[1], b[1])


class BlockStore(RowStore):
    """Feature blocks written once to executor-local files, folded per partition by each pass.

    Parameters
    ----------
    written : RDD of rows of :data:`HANDLE_SCHEMA`
        One row per partition, from a task that wrote that partition's blocks with
        :func:`write_partition`; not persisted. The store caches it, and computes it again
        for partitions whose files are lost.
    balanced : bool
        See :class:`~.row_store.RowStore`.
    """

    def __init__(self, written: RDD, balanced: bool = True) -> None:
        super().__init__(written.map(StoredPartition.from_row).persist(
            StorageLevel.MEMORY_AND_DISK), balanced)
        self.written = written
        self.handles: RDD[StoredPartition]

    def _collect_handles(self) -> list[StoredPartition]:
        return self.handles.collect()

    def aggregate(self, function: Callable[[Iterator[Block]], T | None],
                  merge: Callable[[T, T], T], depth: int, layout: TaskLayout | None = None
                  ) -> T | None:
        """Fold every partition's blocks (with ``layout``: every task's slices) with
        ``function`` and merge the results.

        ``function`` maps an iterator of blocks to one value (None for no rows); ``merge``
        must be associative. Returns None when no partition has any rows.
        """
        if layout is None:
            outcomes = self.handles.mapPartitionsWithIndex(
                partial(_on_stored, function, self._recorded))
        else:
            outcomes = layout.rdd(self.handles).mapPartitionsWithIndex(
                partial(_on_slices, function, layout.by_index(), self.locations))
        missing, value = outcomes.treeReduce(partial(_merge_outcomes, merge), depth)
        ranges: dict[int, list[tuple[int, int]]] = {}
        for piece in missing:
            if isinstance(piece, Slice):
                ranges.setdefault(piece.partition, []).append((piece.start, piece.stop))
        partitions = sorted(set(ranges) | {p for p in missing if not isinstance(p, Slice)})
        if partitions:
            self.recomputed_partitions += len(partitions)
            logger.warning("stored blocks of %d of %d partitions were not readable where "
                           "their tasks ran; recomputing those partitions from the input",
                           len(partitions), self.handles.getNumPartitions())
            # The same lineage as the cached handles, uncached: each task writes its
            # partition again where it runs and folds it (the lost slices of it) there.
            rewritten = self.written.map(StoredPartition.from_row).mapPartitionsWithIndex(
                partial(_on_rewritten, function, ranges))
            for lost, handles, recomputed in self.handles.context.runJob(
                    rewritten, lambda o: o, partitions):
                self.check_unchanged((h.partition, PartitionDigest.of(h)) for h in handles)
                self.locations.update((h.partition, h.location()) for h in handles)  # now here
                if lost:
                    raise OSError(f"partitions {lost} could not be read back right after "
                                  "being written; check the executors' local directories "
                                  "(spark.local.dir) for free space and permissions")
                value = _merge_values(merge, value, recomputed)
        self._written = True
        return value

    def _remove_files(self) -> int:
        # Paths are absolute, so any task on the file's host can remove it; Spark coalesces
        # partitions by the hosts that cache them, so this is one task per core instead of
        # one per partition.
        tasks = min(self.handles.getNumPartitions(), self.handles.context.defaultParallelism)
        return sum(self.handles.coalesce(tasks).mapPartitions(remove_partition_files).collect())
