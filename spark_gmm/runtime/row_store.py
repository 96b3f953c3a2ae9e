"""What every store of a fit's rows does, written once: the first pass's handles, the digests
of what it read, and the clean-up (the classic :class:`~.block_store.BlockStore` and
Spark Connect's :class:`~.connect.ConnectStore` differ only in how they reach the handles)."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

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
    """

    def __init__(self, handles: Any) -> None:
        self.handles = handles
        self.n_partitions = 0  # known once the first pass ran
        self.recomputed_partitions = 0
        self._written = False
        self._recorded: dict[int, PartitionDigest] = {}

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
