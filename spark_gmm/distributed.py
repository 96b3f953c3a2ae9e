"""The distributed statistics pass: broadcast mixtures, mapPartitions, treeReduce."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from functools import partial

import numpy as np
from pyspark import RDD
from pyspark.broadcast import Broadcast

from .data import Block
from .kernels import GaussianParameters, SufficientStatistics, block_statistics, merge_all
from .worker import prepare_python_worker

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
    blocks: Iterator[Block],
) -> Iterator[list[SufficientStatistics]]:
    prepare_python_worker()
    _inject_test_fault()
    mixtures = models.value
    total: list[SufficientStatistics] | None = None
    for x, w in blocks:
        stats = block_statistics(x, w, mixtures, center, hard_assignment)
        total = stats if total is None else merge_all(total, stats)
    if total is not None:
        yield total


class DistributedStatistics:
    """Computes merged statistics of cached blocks for a list of mixtures in one Spark job.

    Parameters
    ----------
    blocks : RDD of (x [n, D], w [n] or None)
        Cached feature blocks.
    center : ndarray of shape (D,)
        The data mean; mixtures are expressed relative to it.
    depth : int
        ``treeReduce`` depth (the ``aggregationDepth`` param).
    """

    def __init__(self, blocks: RDD[Block], center: np.ndarray, depth: int) -> None:
        self.blocks = blocks
        self.center = center
        self.depth = depth

    def __call__(self, models: Sequence[GaussianParameters], hard_assignment: bool = False
                 ) -> list[SufficientStatistics]:
        broadcast = self.blocks.context.broadcast(list(models))
        try:
            statistics = self.blocks.mapPartitions(
                partial(_partition_statistics, broadcast, self.center, hard_assignment)
            ).treeReduce(merge_all, self.depth)
        finally:
            broadcast.destroy()
        return statistics
