"""Passes over the stored rows: fold every partition, merge, hand the result to the driver.

A pass computes the EM statistics of some mixtures, a pseudo-random sample of rows, or one
round of k-means‖ candidates (:func:`fold_pass`), for every model or restart at once. It is
either a Spark job of its own (fold each partition, ``treeReduce``) or a request to the
resident tasks (see :mod:`.resident`).
"""

from __future__ import annotations

import logging
import os
import time
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
from .resident import (
    DEFAULT_PASS_TIMEOUT_SECONDS,
    ENABLED_CONF,
    PASS_TIMEOUT_CONF,
    ResidentTasks,
    ResidentUnavailableError,
)
from .scheduler_state import (
    application_load,
    leaving_executors,
    other_fits,
    slot_count,
    slot_share,
)
from .wire import Value

logger = logging.getLogger(__name__)

# The resident tasks' statistics all reach the driver in one round: beyond this many bytes,
# a pass is a job whose treeReduce merges on the executors.
_MAX_RESIDENT_RESULT_BYTES = 256 << 20
# After handing its slots back to other work, a fit takes them again (or grows back to its
# share) only once no other job has waited at its pass boundaries for this long.
IDLE_SECONDS_BEFORE_RESIDENT = 5.0
# Resident jobs a fit starts again after its cluster changed under one (an executor left,
# rows no longer where the tasks run) before it keeps to one Spark job per pass.
MAX_RESIDENT_RESTARTS = 4

# Test-only fault injection, off unless set in the executors' environment: the index of a
# partition whose statistics task fails on its first attempt (Spark then retries it).
FAULT_INJECTION_ENV = "SPARK_GMM_TEST_FAIL_FIRST_ATTEMPT_OF_PARTITION"
# Test-only: seconds that resident task 0 sleeps inside every pass (a hung task), sent in
# the requests' meta while this is set on the driver.
TEST_HANG_SECONDS: float = 0.0


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
    if meta.get("test_hang_seconds"):
        from pyspark import TaskContext

        context = TaskContext.get()
        if context is not None and context.partitionId() == 0:
            time.sleep(float(meta["test_hang_seconds"]))
    return fold_pass(center, [v for v in values if isinstance(v, GaussianParameters)], meta,
                     blocks)


class DistributedStatistics:
    """Runs the passes of a fit over the stored blocks: statistics, samples, k-means‖
    candidates and Lloyd sums.

    A pass is one Spark job (``treeReduce`` of per-partition results) unless it runs inside
    :meth:`resident`, where one long-running job serves them all. Resident tasks hold the
    slots they take, so they share: the fits of one driver process (threads, notebooks,
    ``CrossValidator(parallelism=2)``) split the slots equally, each resident job taking at
    most its share of the slots that are free when it starts, and a fit whose resident job
    is larger than its share (another fit began) restarts it smaller at its next pass
    boundary. Work from outside the fits (a query of another thread; told apart by the job
    tag :func:`~.scheduler_state.running_fit` gives a fit's jobs) is served first: a fit
    that sees its tasks waiting for a slot at a pass boundary hands all its slots back and
    runs its passes as Spark jobs, which Spark's scheduler interleaves with the rest; after
    :data:`IDLE_SECONDS_BEFORE_RESIDENT` without waiting tasks it starts resident tasks
    again, at its share. Executors that join or leave are followed at pass boundaries, and
    a resident job the cluster changed under is started again (see :meth:`_yield_or_resume`
    and :data:`MAX_RESIDENT_RESTARTS`).

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
        self._others_seen_at: float | None = None  # when other jobs last waited for slots
        self._given_up = False  # resident tasks failed for this fit: jobs from then on
        self._restarts_left = MAX_RESIDENT_RESTARTS
        # A resident job grown onto executors that cannot read the stored rows (on other
        # hosts) failed: the fit keeps to this many tasks from then on.
        self._task_cap: int | None = None
        self._growing_from: int | None = None
        self._leaving: frozenset[str] = frozenset()  # executors seen leaving so far

    @contextmanager
    def resident(self, n_models: int, n_components: int) -> Iterator[DistributedStatistics]:
        """Serve the passes made inside from one long-running Spark job where possible,
        sharing the slots with other fits and yielding them to other work (see the class
        docstring). Any pass the resident job cannot serve runs as a job of its own.
        """
        self._resident_shape = (n_models, n_components)
        try:
            self._resident = self._start_resident(n_models, n_components)
            yield self
        finally:
            self._stop_resident()
            self._resident_shape = None

    def _resident_slots(self, own_tag: str | None) -> tuple[int, int, bool]:
        # (tasks a resident job of this fit may have now, the fit's share of the slots,
        # whether work from outside the fits waits for a slot); the slots of the resident
        # job tagged own_tag, about to be replaced, count as free.
        sc = self.store.handles.context
        running, waiting = application_load(sc, own_tag)
        total = slot_count(sc)
        share = min(self.store.handles.getNumPartitions(), slot_share(total))
        return min(share, total - running, self._task_cap or total), share, waiting

    def _start_resident(self, n_models: int, n_components: int,
                        n_tasks: int | None = None) -> ResidentTasks | None:
        # n_tasks: as just read by the caller (with no outside work waiting), or None.
        sc = self.store.handles.context
        session = SparkSession.getActiveSession()
        enabled = (session.conf.get(ENABLED_CONF, None) if session is not None else None
                   ) or sc.getConf().get(ENABLED_CONF, "true")
        if enabled.strip().lower() != "true":
            self._given_up = True  # switched off: no need to look at the load every pass
            return None
        waiting = False
        if n_tasks is None:
            n_tasks, _, waiting = self._resident_slots(None)
        # Work waiting from outside the fits goes first; the fits share the slots.
        if waiting or n_tasks < 1:
            # Taking slots now would stall this fit (its tasks wait for slots) or the other
            # work (queued behind resident tasks): one Spark job per pass for now.
            logger.info("other Spark jobs of this application %s: the fit runs one Spark "
                        "job per pass for now", "wait for task slots" if waiting
                        else "hold every task slot")
            if waiting:
                self._others_seen_at = time.monotonic()
            return None
        d = self.center.shape[0]
        # Every task's statistics reach the driver at once: bound what that can cost.
        message_bytes = 8 * n_models * n_components * (d * d + d + 2)
        if n_tasks * message_bytes > _MAX_RESIDENT_RESULT_BYTES:
            self._given_up = True  # the statistics are too large for one round to the driver
            return None
        timeout = float((session.conf.get(PASS_TIMEOUT_CONF, None) if session is not None
                         else None) or DEFAULT_PASS_TIMEOUT_SECONDS)
        tasks = None
        try:
            tasks = ResidentTasks(self.store, partial(_answer_request, self.center), n_tasks,
                                  timeout)
            tasks.start()
        except ResidentUnavailableError as reason:
            if tasks is not None:
                tasks.close()
            self._resident_failed(reason)
            return None
        return tasks

    def _resident_failed(self, reason: ResidentUnavailableError) -> None:
        if reason.cluster_changed and self._growing_from is not None:
            self._task_cap = self._growing_from
            logger.warning("the resident job could not grow (%s): it keeps to %d tasks",
                           reason, self._task_cap)
            return
        if reason.cluster_changed and self._restarts_left > 0:
            self._restarts_left -= 1
            logger.warning("the cluster changed under the resident tasks: %s. The pass runs "
                           "as a Spark job; resident tasks start again on the executors "
                           "there are at the next pass", reason)
            return
        # Not tried again: each try could wait for the connect time-out.
        logger.warning("resident tasks given up, one Spark job per pass from now: %s", reason)
        self._given_up = True

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

    def _yield_or_resume(self) -> None:
        # At a pass boundary: hand the slots back when work from outside the fits waits for
        # them, shrink to the share when another fit began, start again or grow when slots
        # are free (after a hand-back: once nothing waited for a while).
        sc = self.store.handles.context
        resident = self._resident
        target, share, waiting = self._resident_slots(resident.tag if resident else None)
        now = time.monotonic()
        if waiting:
            self._others_seen_at = now
            if resident is not None:
                logger.info("other Spark jobs wait for task slots: the fit hands its %d task "
                            "slots back and runs its passes as Spark jobs", resident.n_tasks)
                self._stop_resident()
            return
        assert self._resident_shape is not None
        idle = (self._others_seen_at is None
                or now - self._others_seen_at > IDLE_SECONDS_BEFORE_RESIDENT)
        now_leaving = leaving_executors(sc)
        leaving, self._leaving = now_leaving - self._leaving, now_leaving
        if resident is not None and leaving:
            # A decommissioned executor runs its tasks to their end before it leaves: ours
            # never end, so the job moves to the executors that stay.
            logger.info("executors %s are leaving the application: the resident job starts "
                        "again on the others", ", ".join(sorted(leaving)))
        elif resident is not None and resident.n_tasks > share:
            logger.info("%s: this fit's resident job shrinks from %d tasks to its share of %d",
                        "another fit began" if other_fits() else "executors left the application",
                        resident.n_tasks, share)
        elif not idle or target <= (resident.n_tasks if resident is not None else 0):
            return
        elif resident is not None:
            logger.info("task slots are free: the resident job grows from %d to %d tasks",
                        resident.n_tasks, target)
            self._growing_from = resident.n_tasks
        self._stop_resident()
        self._others_seen_at = None
        try:
            self._resident = self._start_resident(*self._resident_shape, n_tasks=target)
        finally:
            self._growing_from = None

    def _pass(self, mixtures: list[GaussianParameters], meta: dict[str, Any],
              answer_bytes: int = 0) -> list[Any]:
        if self._resident_shape is not None and not self._given_up:
            self._yield_or_resume()
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
            if TEST_HANG_SECONDS:
                meta = {**meta, "test_hang_seconds": TEST_HANG_SECONDS}
            try:
                answers = self._resident.request(list(mixtures), meta)
            except ResidentUnavailableError as reason:
                self._stop_resident()
                self._resident_failed(reason)
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
