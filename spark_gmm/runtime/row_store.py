"""What every store of a fit's rows does, written once: the first pass's handles, the digests
of what it read, and the clean-up (the classic :class:`~.block_store.BlockStore` and
Spark Connect's :class:`~.connect.ConnectStore` differ only in how they reach the handles)."""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .balance import MIN_TASK_ROWS, TaskLayout, plan_layout
from .digest import PartitionDigest

if TYPE_CHECKING:
    from .block_store import StoredPartition

logger = logging.getLogger(__name__)


class RowStore(ABC):
    """A fit's feature blocks in executor-local files, one cached handle per partition.

    Parameters
    ----------
    handles : RDD or DataFrame
        The handles (persisted by the subclass); the first action on them writes the files.
    balanced : bool
        Whether the passes' tasks take slices of near-equal rows (:meth:`layout`) rather
        than whole partitions.
    """

    def __init__(self, handles: Any, balanced: bool = True) -> None:
        self.handles = handles
        self.balanced = balanced
        self.n_partitions = 0  # known once the first pass ran
        self.recomputed_partitions = 0
        self._written = False
        self._recorded: dict[int, PartitionDigest] = {}
        # Every partition's location (no counts or moments), by partition: what tasks read.
        self.locations: dict[int, StoredPartition] = {}
        self._layouts: dict[tuple[int, int], TaskLayout | None] = {}

    @property
    def partition_rows(self) -> list[int]:
        """Rows stored per partition, in partition order (empty before the first pass)."""
        return [self.locations[p].n_rows for p in sorted(self.locations)]

    def max_tasks(self) -> int:
        """The most tasks a pass can keep busy: one per partition, or with balancing one
        per :data:`~.balance.MIN_TASK_ROWS` rows when that is more."""
        if not self.balanced:
            return self.n_partitions
        return max(self.n_partitions, sum(self.partition_rows) // MIN_TASK_ROWS)

    def layout(self, n_tasks: int, n_hosts: int = 1) -> TaskLayout | None:
        """The slices the tasks of a pass take (:func:`~.balance.plan_layout`; ``n_tasks``
        at most, and no more than :meth:`max_tasks`), or None when they take whole
        partitions (balancing off, or as even already). ``n_hosts``: the hosts of the
        application's executors."""
        if not self.balanced:
            return None
        key = (min(n_tasks, self.max_tasks()), n_hosts)
        if key not in self._layouts:
            self._layouts[key] = plan_layout(
                [self.locations[p] for p in sorted(self.locations)], *key)
        return self._layouts[key]

    @property
    def recorded(self) -> dict[int, PartitionDigest]:
        """What the first pass read of each partition (empty before it ran)."""
        return self._recorded

    def stored_partitions(self) -> list[StoredPartition]:
        """Every partition's handle, in partition order; the first call writes the files."""
        handles = sorted(self._collect_handles(), key=lambda h: h.partition)
        self._written = True
        self.n_partitions = len(handles)
        self._recorded = {h.partition: PartitionDigest.of(h) for h in handles}
        self.locations = {h.partition: h.location() for h in handles}
        return handles

    def check_unchanged(self, readings: Iterable[tuple[int, PartitionDigest]]) -> None:
        """Raise :class:`~spark_gmm.errors.InputChangedError` when a partition read again
        from the input (``(partition, digest)`` pairs) differs from the first pass."""
        for partition, digest in readings:
            first = self._recorded.get(partition)
            if first is not None:
                first.check_same(partition, digest)

    def close(self) -> None:
        """Delete the files (best effort: a file whose task runs on another host stays until
        its executor stops) and release the cached handles."""
        try:
            # Unless a pass completed, removing would mean writing first (a failed first
            # pass leaves what its tasks wrote to Spark's own clean-up at executor stop).
            if self._written:
                logger.debug("removed %d stored block files", self._remove_files())
        except Exception:  # a failed clean-up must not hide the fit's own outcome
            logger.warning("could not remove the stored block files; Spark deletes them "
                           "when the executors stop", exc_info=True)
        finally:
            self.handles.unpersist()

    @abstractmethod
    def _collect_handles(self) -> list[StoredPartition]:
        """Every partition's handle (an action: the first one writes the files)."""

    @abstractmethod
    def _remove_files(self) -> int:
        """Remove every partition's files; the number removed."""


def remove_partition_files(handles: Iterator[StoredPartition]) -> Iterator[int]:
    """Delete the files of these partitions (in a task on their host); how many."""
    removed = 0
    for stored in handles:
        for path in (stored.features_path, stored.weights_path):
            if os.path.exists(path):
                os.unlink(path)
                removed += 1
        try:
            os.rmdir(stored.directory)  # only once the last partition here is gone
        except OSError:
            pass
    yield removed
