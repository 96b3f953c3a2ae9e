"""Task slots: what the application's scheduler says of them now (slots, other jobs' tasks,
leaving executors), and the fits of this driver process that share them.

Read by a fit at its pass boundaries to decide how many resident tasks to run (see
:mod:`.slot_sharing`). Each reading is a few py4j calls into private Spark APIs; where one
is missing, the answer is the one that keeps a fit correct (no slots: no resident tasks).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark import SparkContext

logger = logging.getLogger(__name__)

# The fits of this driver process now running (:func:`running_fit`), by the job tag their
# Spark jobs carry: they share the slots, and yield them to every other job.
_FITS_LOCK = threading.Lock()
_ACTIVE_FITS: set[str] = set()
_FIT_TAG_PREFIX = "spark-gmm-fit-"


@contextmanager
def running_fit() -> Iterator[None]:
    """Count a fit among this process's running fits for its whole duration (its first pass
    included), so that fits started together share the task slots from the start, and tag
    the Spark jobs the calling thread (and threads it starts) runs meanwhile as this fit's.
    """
    tag = f"{_FIT_TAG_PREFIX}{uuid.uuid4().hex}"
    sc = SparkContext._active_spark_context  # None for a Spark Connect client
    with _FITS_LOCK:
        _ACTIVE_FITS.add(tag)
    if sc is not None:
        sc.addJobTag(tag)
    try:
        yield
    finally:
        if sc is not None:
            sc.removeJobTag(tag)
        with _FITS_LOCK:
            _ACTIVE_FITS.discard(tag)


def slot_share(total_slots: int) -> int:
    """The slots each running fit of this process may hold (at least one)."""
    with _FITS_LOCK:
        return max(1, total_slots // max(1, len(_ACTIVE_FITS)))


def other_fits() -> bool:
    """Whether another fit of this process runs besides the caller's."""
    with _FITS_LOCK:
        return len(_ACTIVE_FITS) > 1


def slot_count(sc: SparkContext) -> int:
    """Tasks the application can run at once now on executors that take new tasks (0 when
    Spark does not say)."""
    try:
        jsc = sc._jsc.sc()  # type: ignore[union-attr]
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        return int(jsc.maxNumConcurrentTasks(profile))
    except Exception:  # a private API: without it, no resident tasks
        logger.debug("could not read the number of task slots", exc_info=True)
        return 0


def executor_hosts(sc: SparkContext) -> int | None:
    """Hosts the application's executors run on (1 in local mode; None when Spark does not
    say). A few py4j calls."""
    if sc.master.startswith("local"):
        return 1
    try:
        executors = sc._jsc.sc().statusStore().executorList(True)  # type: ignore[union-attr]
        hosts = {str(executors.apply(i).hostPort()).rsplit(":", 1)[0]
                 for i in range(executors.size()) if str(executors.apply(i).id()) != "driver"}
    except Exception:  # a private API: without it, the partitions decide (see .balance)
        logger.debug("could not read the executors' hosts", exc_info=True)
        return None
    return len(hosts) or None


def leaving_executors(sc: SparkContext) -> frozenset[str]:
    """Executors still registered that the scheduler gives no new tasks: decommissioning
    (a node an autoscaler takes away, or dynamic allocation's graceful removal) or being
    removed. Empty in local mode, and where Spark does not say.

    Two py4j calls plus one per executor.
    """
    if sc.master.startswith("local"):
        return frozenset()
    try:
        backend = sc._jsc.sc().schedulerBackend()  # type: ignore[union-attr]
        registered = [e for e in str(backend.getExecutorIds().mkString("\n")).split("\n") if e]
        return frozenset(e for e in registered if not backend.isExecutorActive(e))
    except Exception:  # a scheduler backend that does not manage executors
        logger.debug("could not read which executors are leaving", exc_info=True)
        return frozenset()


def application_load(sc: SparkContext, own_tag: str | None = None) -> tuple[int, bool]:
    """Tasks running now in the application's active stages other than those of the
    resident job tagged ``own_tag``, and whether work from outside this process's fits (a
    query of another thread, say) has tasks waiting for a slot.

    The status store lags the scheduler by a moment: a stage just submitted is seen at the
    next pass boundary, and a resident job's own tasks may still look queued (hence
    ``own_tag``). A few py4j calls per active job and stage, whatever the number of jobs
    the fits ran before; a fit reads this once per pass.
    """
    try:
        tracker = sc.statusTracker()
        store = sc._jsc.sc().statusStore()  # type: ignore[union-attr]
        with _FITS_LOCK:
            fit_tags = set(_ACTIVE_FITS)
        own_stages: set[int] = set()
        fits_stages: set[int] = set()
        for job_id in tracker.getActiveJobsIds():
            job = tracker.getJobInfo(job_id)
            if job is None:
                continue
            tags = set(str(store.job(job_id).jobTags().mkString("\n")).split("\n"))
            if own_tag in tags:
                own_stages |= set(job.stageIds)
            if tags & fit_tags:
                fits_stages |= set(job.stageIds)
        running, waiting = 0, False
        for stage_id in set(tracker.getActiveStageIds()) - own_stages:
            stage = tracker.getStageInfo(stage_id)
            if stage is None:
                continue
            running += stage.numActiveTasks
            waiting |= (stage_id not in fits_stages
                        and stage.numTasks > stage.numActiveTasks + stage.numCompletedTasks)
    except Exception:  # without a status tracker, assume the application is ours alone
        logger.debug("could not read the application's active stages", exc_info=True)
        return 0, False
    return running, waiting
