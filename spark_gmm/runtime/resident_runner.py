"""The pass runner of resident tasks: one long-running Spark job serves a fit's passes.

The runner starts its resident job (:class:`~.resident.ResidentTasks`) when the fit enters
it and sends each pass to the job as one request. How many tasks the job has, and when it
hands its slots back, grows, shrinks or starts again, is the slot-sharing policy's
(:class:`~.slot_sharing.SlotSharing`), consulted at every pass boundary. A pass the
resident job cannot serve (none runs, it failed, or its answers would be too large for one
round to the driver) runs as a Spark job of its own (:class:`~.passes.JobPassRunner`), and
gives the same values.
"""

from __future__ import annotations

import logging
from functools import partial, reduce
from types import TracebackType
from typing import Any

import numpy as np

from ..kernels import merge_all
from .block_store import BlockStore
from .passes import JobPassRunner, PassCounters, TaskHook, fold_in_task
from .requests import PassRequest, statistics_bytes
from .resident import DEFAULT_PASS_TIMEOUT_SECONDS, ResidentTasks, ResidentUnavailableError
from .slot_sharing import SlotSharing

logger = logging.getLogger(__name__)

# The resident tasks' answers all reach the driver in one round: beyond this many bytes,
# a pass is a job whose treeReduce merges on the executors.
MAX_RESIDENT_RESULT_BYTES = 256 << 20


class ResidentPassRunner:
    """Passes served by resident tasks where possible, by Spark jobs otherwise.

    Parameters
    ----------
    store : BlockStore
        The feature blocks (written by the first pass).
    center : ndarray of shape (D,)
        The data mean; requests are expressed relative to it.
    depth : int
        ``treeReduce`` depth of the passes run as Spark jobs.
    shape : (int, int)
        The most models, and components per model, a statistics pass of the fit computes
        (bounds what one round of answers costs the driver).
    pass_timeout : float
        Seconds a resident pass may take before the runner gives the job up.
    task_hook : callable or None
        See :data:`~.passes.TaskHook`.
    """

    def __init__(self, store: BlockStore, center: np.ndarray, depth: int,
                 shape: tuple[int, int], pass_timeout: float = DEFAULT_PASS_TIMEOUT_SECONDS,
                 task_hook: TaskHook | None = None) -> None:
        self.store = store
        self.center = center
        self.shape = shape
        self.pass_timeout = pass_timeout
        self.task_hook = task_hook
        self.counters = PassCounters()
        self.jobs = JobPassRunner(store, center, depth, task_hook, self.counters)
        # A job has at most a task per partition, or with balancing per slice (.balance).
        self.sharing = SlotSharing(store.handles.context, store.max_tasks())
        self._resident: ResidentTasks | None = None
        self._serving = False  # inside the fit's ``with``: resident jobs may run

    def __enter__(self) -> ResidentPassRunner:
        self._serving = True
        self._resident = self._start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._serving = False
        self._stop()

    def _start(self, n_tasks: int | None = None) -> ResidentTasks | None:
        # n_tasks: as just read by the policy at a pass boundary, or None.
        n_tasks = self.sharing.tasks_to_start(n_tasks)
        if n_tasks is None:
            return None
        n_models, n_components = self.shape
        # Every task's statistics reach the driver at once: bound what that can cost.
        message_bytes = n_models * statistics_bytes(n_components, self.center.shape[0])
        if n_tasks * message_bytes > MAX_RESIDENT_RESULT_BYTES:
            self.sharing.given_up = True  # too large for one round to the driver
            return None
        tasks = None
        try:
            tasks = ResidentTasks(self.store, partial(fold_in_task, "resident", self.center,
                                                      self.task_hook),
                                  n_tasks, self.pass_timeout)
            tasks.start()
        except ResidentUnavailableError as reason:
            if tasks is not None:
                tasks.close()
            self.sharing.failed(reason)
            return None
        self.counters.resident_jobs.append(tasks.n_tasks)
        self.counters.task_rows = tasks.task_rows
        return tasks

    def _stop(self) -> None:
        if self._resident is not None:
            self._resident.close()
            self._resident = None

    def _at_boundary(self) -> None:
        move = self.sharing.at_boundary(self._resident)
        if move.stop:
            self._stop()
        if move.start is not None:
            try:
                self._resident = self._start(move.start)
            finally:
                self.sharing.growing_from = None

    def run(self, request: PassRequest) -> list[Any]:
        if not self._serving:
            return self.jobs.run(request)
        if not self.sharing.given_up:
            self._at_boundary()
        answer_bytes = request.answer_bytes(self.center.shape[0])
        if (self._resident is not None
                and self._resident.n_tasks * answer_bytes > MAX_RESIDENT_RESULT_BYTES):
            # Every task's answer would reach the driver at once: this pass runs as a Spark
            # job instead, whose treeReduce merges on the executors, between two resident
            # jobs (the resident tasks hold the slots a job needs).
            logger.info("the %s pass runs as a Spark job: %d tasks would send the driver %d "
                        "bytes each", request.kind, self._resident.n_tasks, answer_bytes)
            self._stop()
            try:
                return self.jobs.run(request)
            finally:
                self._resident = self._start()
        if self._resident is not None:
            try:
                answers = self._resident.request(request)
            except ResidentUnavailableError as reason:
                self._stop()
                self.sharing.failed(reason)
            else:
                self.counters.resident_passes += 1
                return reduce(merge_all, (a for a in answers if a))
        return self.jobs.run(request)
