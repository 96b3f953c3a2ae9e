"""How one fit's resident jobs share the task slots, decided at its pass boundaries.

Resident tasks hold the slots they take, so they share: the fits of one driver process
(threads, notebooks, ``CrossValidator(parallelism=2)``) split the slots equally, each
resident job taking at most its share of the slots that are free when it starts, and a fit
whose resident job is larger than its share (another fit began) restarts it smaller at its
next pass boundary. Work from outside the fits (a query of another thread; told apart by the
job tag :func:`~.scheduler_state.running_fit` gives a fit's jobs) is served first: a fit
that sees its tasks waiting for a slot at a pass boundary hands all its slots back and runs
its passes as Spark jobs, which Spark's scheduler interleaves with the rest; after
:data:`IDLE_SECONDS_BEFORE_RESIDENT` without waiting tasks it starts resident tasks again,
at its share. Executors that join or leave are followed at pass boundaries, and a resident
job the cluster changed under is started again, at most :data:`MAX_RESIDENT_RESTARTS`
times.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

from pyspark import SparkContext

from .resident import ResidentTasks, ResidentUnavailableError
from .scheduler_state import (
    application_load,
    leaving_executors,
    other_fits,
    slot_count,
    slot_share,
)

logger = logging.getLogger(__name__)

# After handing its slots back to other work, a fit takes them again (or grows back to its
# share) only once no other job has waited at its pass boundaries for this long.
IDLE_SECONDS_BEFORE_RESIDENT = 5.0
# Resident jobs a fit starts again after its cluster changed under one (an executor left,
# rows no longer where the tasks run) before it keeps to one Spark job per pass.
MAX_RESIDENT_RESTARTS = 4


class Move(NamedTuple):
    """What to do with the resident job at a pass boundary."""

    stop: bool  # stop the running resident job
    start: int | None  # then start one of this many tasks (None: start none)


KEEP = Move(False, None)


class SlotSharing:
    """One fit's slot-sharing state and decisions (see the module docstring).

    Parameters
    ----------
    sc : SparkContext
    n_partitions : int
        The most tasks a resident job may have (the stored partitions, or with balancing
        the slices they can be cut into: ``store.max_tasks()``).
    """

    def __init__(self, sc: SparkContext, n_partitions: int) -> None:
        self._sc = sc
        self._partitions = n_partitions
        self.others_seen_at: float | None = None  # when other jobs last waited for slots
        self.given_up = False  # resident tasks failed for this fit: jobs from then on
        self.restarts_left = MAX_RESIDENT_RESTARTS
        # A resident job grown onto executors that cannot read the stored rows (on other
        # hosts) failed: the fit keeps to this many tasks from then on.
        self.task_cap: int | None = None
        self.growing_from: int | None = None  # the size of a job being replaced by a larger
        self.leaving: frozenset[str] = frozenset()  # executors seen leaving so far

    def slots(self, own_tag: str | None) -> tuple[int, int, bool]:
        """(tasks a resident job of this fit may have now, the fit's share of the slots,
        whether work from outside the fits waits for a slot); the slots of the resident job
        tagged ``own_tag``, about to be replaced, count as free."""
        running, waiting = application_load(self._sc, own_tag)
        total = slot_count(self._sc)
        share = min(self._partitions, slot_share(total))
        return min(share, total - running, self.task_cap or total), share, waiting

    def tasks_to_start(self, n_tasks: int | None) -> int | None:
        """The tasks a new resident job may have (``n_tasks``: as just read by the caller,
        with no outside work waiting), or None when it should not start now."""
        waiting = False
        if n_tasks is None:
            n_tasks, _, waiting = self.slots(None)
        # Work waiting from outside the fits goes first; the fits share the slots.
        if waiting or n_tasks < 1:
            # Taking slots now would stall this fit (its tasks wait for slots) or the other
            # work (queued behind resident tasks): one Spark job per pass for now.
            logger.info("other Spark jobs of this application %s: the fit runs one Spark "
                        "job per pass for now", "wait for task slots" if waiting
                        else "hold every task slot")
            if waiting:
                self.others_seen_at = time.monotonic()
            return None
        return n_tasks

    def failed(self, reason: ResidentUnavailableError) -> None:
        """A resident job could not start or serve: keep to a smaller job, start again at
        the next pass, or give resident tasks up for the fit."""
        if reason.cluster_changed and self.growing_from is not None:
            self.task_cap = self.growing_from
            logger.warning("the resident job could not grow (%s): it keeps to %d tasks",
                           reason, self.task_cap)
            return
        if reason.cluster_changed and self.restarts_left > 0:
            self.restarts_left -= 1
            logger.warning("the cluster changed under the resident tasks: %s. The pass runs "
                           "as a Spark job; resident tasks start again on the executors "
                           "there are at the next pass", reason)
            return
        # Not tried again: each try could wait for the connect time-out.
        logger.warning("resident tasks given up, one Spark job per pass from now: %s", reason)
        self.given_up = True

    def at_boundary(self, resident: ResidentTasks | None) -> Move:
        """At a pass boundary: hand the slots back when work from outside the fits waits
        for them, shrink to the share when another fit began, start again or grow when
        slots are free (after a hand-back: once nothing waited for a while)."""
        target, share, waiting = self.slots(resident.tag if resident else None)
        now = time.monotonic()
        if waiting:
            self.others_seen_at = now
            if resident is None:
                return KEEP
            logger.info("other Spark jobs wait for task slots: the fit hands its %d task "
                        "slots back and runs its passes as Spark jobs", resident.n_tasks)
            return Move(True, None)
        idle = (self.others_seen_at is None
                or now - self.others_seen_at > IDLE_SECONDS_BEFORE_RESIDENT)
        now_leaving = leaving_executors(self._sc)
        leaving, self.leaving = now_leaving - self.leaving, now_leaving
        if resident is not None and leaving:
            # A decommissioned executor runs its tasks to their end before it leaves: ours
            # never end, so the job moves to the executors that stay.
            logger.info("executors %s are leaving the application: the resident job starts "
                        "again on the others", ", ".join(sorted(leaving)))
        elif resident is not None and resident.n_tasks > share:
            logger.info("%s: this fit's resident job shrinks from %d tasks to its share of %d",
                        "another fit began" if other_fits() else "executors left the application",
                        resident.n_tasks, share)
        elif not idle or target <= (resident.asked if resident is not None else 0):
            # (a job asked for as many as the target, and made fewer, would make as few)
            return KEEP
        elif resident is not None:
            logger.info("task slots are free: the resident job grows from %d to %d tasks",
                        resident.n_tasks, target)
            self.growing_from = resident.n_tasks
        self.others_seen_at = None
        return Move(True, target)
