"""Passes over the stored rows: fold every partition, merge, hand the result to the driver.

A pass computes the EM statistics of some mixtures, a pseudo-random sample of rows, or one
round of k-means‖ candidates (:func:`fold_pass`), for every model or restart at once. It is
either a Spark job of its own (fold each partition, ``treeReduce``) or a request to the
resident tasks (see :mod:`.resident`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial, reduce
from typing import Any

import numpy as np
from pyspark.broadcast import Broadcast
from pyspark.sql import SparkSession

from ..kernels import GaussianParameters, SufficientStatistics, block_statistics, merge_all
from ..kernels.kmeans import ClusterSums
from ..kernels.sampling import Candidates, KeyedRows
from .block_store import BlockStore
from .input_checks import Block
from .resident import ENABLED_CONF, ResidentTasks, ResidentUnavailableError, slot_count
from .wire import Value

logger = logging.getLogger(__name__)

# The resident tasks' statistics all reach the driver in one round: beyond this many bytes,
# a pass is a job whose treeReduce merges on the executors.
_MAX_RESIDENT_RESULT_BYTES = 256 << 20

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


def fold_statistics(
    mixtures: Sequence[GaussianParameters],
    center: np.ndarray,
    hard_assignment: bool,
    count_assignments: bool,
    blocks: Iterable[Block],
) -> list[SufficientStatistics] | None:
    """Statistics of every block for each mixture, merged in block order (None: no blocks)."""
    return _per_block(blocks, lambda block: block_statistics(
        block[0], block[1], mixtures, center, hard_assignment, count_assignments))


def _per_block(blocks: Iterable[Block], fold: Callable[[Block], list[Any]]) -> list[Any] | None:
    # One value per model from each block, merged model by model in block order.
    total = None
    for block in blocks:
        values = fold(block)
        total = values if total is None else merge_all(total, values)
    return total


def fold_pass(center: np.ndarray, mixtures: Sequence[GaussianParameters],
              meta: dict[str, Any], blocks: Iterable[Block]) -> list[Any] | None:
    """One pass of kind ``meta["kind"]`` over some blocks: a list with one mergeable value
    per model or restart (None for no blocks).

    ``statistics``: :class:`SufficientStatistics` of each mixture. ``sample``: for each seed,
    the :class:`KeyedRows` with the smallest keys. ``candidates``: for each centre set (in
    centred coordinates) and seed, one round of k-means‖ :class:`Candidates`.
    ``cluster_sums``: for each centre set, the :class:`ClusterSums` of a Lloyd step.
    """
    kind = meta.get("kind", "statistics")
    if kind == "statistics":
        return fold_statistics(mixtures, center, bool(meta["hard_assignment"]),
                               bool(meta["count_assignments"]), blocks)
    if kind == "sample":
        return _per_block(blocks, lambda block: [
            KeyedRows.of(block[0], seed, int(meta["size"]), bool(meta["distinct"]))
            for seed in meta["seeds"]])
    if kind not in ("candidates", "cluster_sums"):
        raise ValueError(f"unknown pass {kind!r}")
    centre_sets = [np.array(c, dtype=np.float64) for c in meta["centres"]]

    def per_centre_set(block: Block) -> list[Any]:
        centred = block[0] - center  # once per block, whatever the number of centre sets
        if kind == "cluster_sums":
            return [ClusterSums.of(centred, block[1], centres) for centres in centre_sets]
        return [Candidates.of(centred, block[0], block[1], centres, seed, float(oversampling))
                for centres, seed, oversampling in zip(centre_sets, meta["seeds"],
                                                       meta["oversampling"])]

    return _per_block(blocks, per_centre_set)


def _partition_pass(mixtures: Broadcast[list[GaussianParameters]] | None, center: np.ndarray,
                    meta: dict[str, Any], blocks: Iterator[Block]) -> list[Any] | None:
    _inject_test_fault()
    return fold_pass(center, [] if mixtures is None else mixtures.value, meta, blocks)


def _answer_request(center: np.ndarray, values: list[Value], meta: dict[str, Any],
                    blocks: list[Block]) -> list[Any] | None:
    # In a resident task: one request is one pass over the task's blocks.
    _inject_test_fault()
    return fold_pass(center, [v for v in values if isinstance(v, GaussianParameters)], meta,
                     blocks)


class DistributedStatistics:
    """Runs the passes of a fit over the stored blocks: statistics, samples, k-means‖
    candidates and Lloyd sums.

    A pass is one Spark job (``treeReduce`` of per-partition results) unless it runs inside
    :meth:`resident`, where one long-running job serves them all.

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
        self.resident_passes = 0
        self.job_passes = 0
        self._resident: ResidentTasks | None = None
        self._resident_shape: tuple[int, int] | None = None

    @contextmanager
    def resident(self, n_models: int, n_components: int) -> Iterator[DistributedStatistics]:
        """Serve the passes made inside from one long-running Spark job where possible.

        Nothing else may run Spark jobs on this application inside: the resident tasks hold
        the task slots. Any pass the resident job cannot serve runs as a job of its own.
        """
        self._resident_shape = (n_models, n_components)
        self._resident = self._start_resident(n_models, n_components)
        try:
            yield self
        finally:
            self._stop_resident()
            self._resident_shape = None

    def _start_resident(self, n_models: int, n_components: int) -> ResidentTasks | None:
        sc = self.store.handles.context
        session = SparkSession.getActiveSession()
        enabled = (session.conf.get(ENABLED_CONF, None) if session is not None else None
                   ) or sc.getConf().get(ENABLED_CONF, "true")
        if enabled.strip().lower() != "true":
            return None
        n_tasks = min(self.store.handles.getNumPartitions(), slot_count(sc))
        d = self.center.shape[0]
        # Every task's statistics reach the driver at once: bound what that can cost.
        message_bytes = 8 * n_models * n_components * (d * d + d + 2)
        if n_tasks < 1 or n_tasks * message_bytes > _MAX_RESIDENT_RESULT_BYTES:
            return None
        tasks = None
        try:
            tasks = ResidentTasks(self.store, partial(_answer_request, self.center), n_tasks)
            tasks.start()
        except ResidentUnavailableError as reason:
            logger.warning("the fit runs one Spark job per pass: %s", reason)
            if tasks is not None:
                tasks.close()
            return None
        return tasks

    def _stop_resident(self) -> None:
        if self._resident is not None:
            self._resident.close()
            self._resident = None

    def __call__(self, models: Sequence[GaussianParameters], hard_assignment: bool = False,
                 count_assignments: bool = False) -> list[SufficientStatistics]:
        """Merged statistics of every stored row for each model (see ``block_statistics``).

        EM iterations leave ``count_assignments`` off: only the summary of the final model
        needs the cluster sizes.
        """
        return self._pass(list(models), {"kind": "statistics",
                                         "hard_assignment": hard_assignment,
                                         "count_assignments": count_assignments})

    def sample(self, seeds: Sequence[int], size: int, distinct: bool) -> list[KeyedRows]:
        """For each seed, up to ``size`` rows (raw) chosen pseudo-randomly, identically for any
        partitioning; with ``distinct`` no two are equal. One pass for all seeds."""
        # Each task answers with up to ``size`` rows and keys per seed.
        answer_bytes = 8 * size * (self.center.shape[0] + 1) * len(seeds)
        return self._pass([], {"kind": "sample", "seeds": list(seeds), "size": size,
                               "distinct": distinct}, answer_bytes)

    def candidates(self, centre_sets: Sequence[np.ndarray], seeds: Sequence[int],
                   oversampling: Sequence[float]) -> list[Candidates]:
        """One round of k-means‖ for each centre set (centred coordinates), with its own seed
        and oversampling factor, in one pass."""
        return self._pass([], {"kind": "candidates", "seeds": list(seeds),
                               "oversampling": [float(v) for v in oversampling],
                               "centres": [np.asarray(c).tolist() for c in centre_sets]})

    def cluster_sums(self, centre_sets: Sequence[np.ndarray]) -> list[ClusterSums]:
        """One Lloyd step's sums for each centre set (centred coordinates) in one pass."""
        return self._pass([], {"kind": "cluster_sums",
                               "centres": [np.asarray(c).tolist() for c in centre_sets]})

    def _pass(self, mixtures: list[GaussianParameters], meta: dict[str, Any],
              answer_bytes: int = 0) -> list[Any]:
        if (self._resident is not None and self._resident_shape is not None
                and self._resident.n_tasks * answer_bytes > _MAX_RESIDENT_RESULT_BYTES):
            # Every task's answer would reach the driver at once: this pass runs as a Spark
            # job instead, whose treeReduce merges on the executors, between two resident
            # jobs (the resident tasks hold the slots a job needs).
            logger.info("the %s pass runs as a Spark job: %d tasks would send the driver %d "
                        "bytes each", meta.get("kind"), self._resident.n_tasks, answer_bytes)
            self._stop_resident()
            try:
                return self._job_pass(mixtures, meta)
            finally:
                self._resident = self._start_resident(*self._resident_shape)
        if self._resident is not None:
            try:
                answers = self._resident.request(list(mixtures), meta)
            except ResidentUnavailableError as reason:
                logger.warning("resident tasks given up, one Spark job per pass from now: %s",
                               reason)
                self._stop_resident()
            else:
                self.resident_passes += 1
                return reduce(merge_all, (a for a in answers if a))
        return self._job_pass(mixtures, meta)

    def _job_pass(self, mixtures: list[GaussianParameters], meta: dict[str, Any]
                  ) -> list[Any]:
        self.job_passes += 1
        broadcast = self.store.handles.context.broadcast(mixtures) if mixtures else None
        try:
            merged = self.store.aggregate(partial(_partition_pass, broadcast, self.center, meta),
                                          merge_all, self.depth)
        finally:
            if broadcast is not None:
                broadcast.destroy()
        assert merged is not None, "validation rejects empty input before any pass"
        return merged
