"""Phases that say when they start, that they are still running, and how long they took.

A fit or a job on a cold JVM can spend tens of seconds in one Spark job; a line every few
seconds (with the running stages' task counts) tells whoever watches the log that it is
alive and how far it got.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark import SparkContext

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 4.0


def _running_stages() -> str:
    sc = SparkContext._active_spark_context
    if sc is None:
        return ""
    try:
        tracker = sc.statusTracker()
        stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
    except Exception:  # a context still starting (a local Connect server's), or stopping
        return ""
    done = [f"stage {s.stageId}: {s.numCompletedTasks}/{s.numTasks} tasks"
            for s in stages if s is not None]
    return f" ({'; '.join(done)})" if done else ""


@dataclass
class PhaseTiming:
    """Seconds a phase took; set when it ends."""

    seconds: float = 0.0


@contextmanager
def phase(name: str, log: logging.Logger = logger, every: float = HEARTBEAT_SECONDS
          ) -> Iterator[PhaseTiming]:
    """Log ``name ...`` now, ``name: still running after N s`` every ``every`` seconds, and
    ``name took N s`` (or ``name failed after N s``) at the end; the timing it yields holds
    the seconds once the phase has ended."""
    started = time.perf_counter()
    log.info("%s ...", name)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(every):
            log.info("%s: still running after %.0f s%s", name, time.perf_counter() - started,
                     _running_stages())

    beating = threading.Thread(target=heartbeat, name=f"progress: {name}", daemon=True)
    beating.start()
    failed = True
    timing = PhaseTiming()
    try:
        yield timing
        failed = False
    finally:
        stop.set()
        beating.join()
        timing.seconds = time.perf_counter() - started
        log.info("%s %s %.2f s", name, "failed after" if failed else "took", timing.seconds)
