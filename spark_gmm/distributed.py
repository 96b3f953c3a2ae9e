"""The distributed statistics pass: broadcast mixtures, fold stored partitions, treeReduce."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from functools import partial

import numpy as np
from pyspark.broadcast import Broadcast

from .block_store import Block, BlockStore
from .kernels import GaussianParameters, SufficientStatistics, block_statistics, merge_all

logger = logging.getLogger(__name__)

# Test-only fault injection, off unless set in the executors' environment: the index of a
# partition whose statistics task fails on its first attempt (Spark then retries it).
FAULT_INJECTION_ENV = "SPARK_GMM_TEST_FAIL_FIRST_ATTEMPT_OF_PARTITION"


def _inject_test_fault() -> None:
    target = os.environ.get(FAULT_INJECTION_ENV)
    if target is None:
        return
    from pyspark import TaskContext

    context = TaskContext.get()
    if (context is not None and context.partitionId() == int(target)
            and context.attemptNumber() == 0):
        raise RuntimeError(f"injected test fault in partition {target} (first attempt)")


def _partition_statistics(
    models: Broadcast[list[GaussianParameters]],
    center: np.ndarray,
    hard_assignment: bool,
    count_assignments: bool,
    blocks: Iterator[Block],
) -> list[SufficientStatistics] | None:
    _inject_test_fault()
    mixtures = models.value
    total: list[SufficientStatistics] | None = None
    for x, w in blocks:
        stats = block_statistics(x, w, mixtures, center, hard_assignment, count_assignments)
        total = stats if total is None else merge_all(total, stats)
    return total


class DistributedStatistics:
    """Computes merged statistics of the stored blocks for a list of mixtures in one pass.

    Parameters
    ----------
    store : BlockStore
        The feature blocks.
    center : ndarray of shape (D,)
        The data mean; mixtures are expressed relative to it.
    depth : int
        ``treeReduce`` depth (the ``aggregationDepth`` param).
    """

    def __init__(self, store: BlockStore, center: np.ndarray, depth: int) -> None:
        self.store = store
        self.center = center
        self.depth = depth

    def __call__(self, models: Sequence[GaussianParameters], hard_assignment: bool = False,
                 count_assignments: bool = False) -> list[SufficientStatistics]:
        """Merged statistics of every stored row for each model (see ``block_statistics``).

        EM iterations leave ``count_assignments`` off: only the summary of the final model
        needs the cluster sizes.
        """
        broadcast = self.store.handles.context.broadcast(list(models))
        try:
            statistics = self.store.aggregate(
                partial(_partition_statistics, broadcast, self.center, hard_assignment,
                        count_assignments),
                merge_all, self.depth,
            )
        finally:
            broadcast.destroy()
        assert statistics is not None, "validation rejects empty input before EM"
        return statistics
