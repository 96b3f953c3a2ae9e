"""Pass runners: one pass over a fit's stored rows, whatever carries it.

A pass folds every stored block with a request (:mod:`.requests`) and merges the values. Three
runners implement :class:`PassRunner`, and one is chosen per fit (:func:`.runners.pass_runner`):

- :class:`JobPassRunner`: one Spark job per pass (fold each partition, ``treeReduce``);
- :class:`~.resident_runner.ResidentPassRunner`: long-running resident tasks answer the
  passes, sharing the task slots by a policy of their own (:mod:`.slot_sharing`), with a
  :class:`JobPassRunner` for the passes they cannot serve;
- :class:`~.connect.ConnectPassRunner`: one ``mapInArrow`` query per pass on Spark Connect.

Each runner counts its passes in :class:`PassCounters`. A runner may be given a
:data:`TaskHook`, called inside every task of a pass before it folds (shipped to the
executors in the task's closure): tests inject their faults there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Protocol

import numpy as np
from pyspark.broadcast import Broadcast

from ..kernels import merge_all
from .block_store import BlockStore
from .input_checks import Block
from .requests import PassRequest, fold_blocks
from .scheduler_state import executor_hosts, slot_count

# Called in a task before it folds its blocks for a pass: (the runner's name, "job",
# "resident" or "connect"; the request). Must be picklable.
TaskHook = Callable[[str, PassRequest], None]


@dataclass
class PassCounters:
    """What a runner did: passes served by resident tasks, passes run as Spark jobs (or
    Connect queries), the tasks of each resident job it started, in order, the rows each
    task of its latest pass held (in task order; see :mod:`.balance`), and where it
    measures them, the seconds of its passes by part (Connect: ``wall``, ``task_fold``,
    ``client_merge``)."""

    resident_passes: int = 0
    job_passes: int = 0
    resident_jobs: list[int] = field(default_factory=list)
    task_rows: list[int] = field(default_factory=list)
    pass_seconds: dict[str, float] = field(default_factory=dict)

    def add_seconds(self, part: str, seconds: float) -> None:
        self.pass_seconds[part] = self.pass_seconds.get(part, 0.0) + seconds


class PassRunner(Protocol):
    """Runs the passes of one fit over its stored rows.

    Use it as a context manager around the fit's passes (a resident runner starts its
    tasks on entry and stops them on exit); read :attr:`counters` after.
    """

    counters: PassCounters

    def run(self, request: PassRequest) -> list[Any]:
        """One pass: ``request`` folded over every stored row, one merged value per model
        (or restart) of the request."""
        ...

    def __enter__(self) -> PassRunner: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None: ...


class StatelessRunner:
    """A runner with nothing to start or stop: entering and leaving do nothing."""

    def __enter__(self) -> StatelessRunner:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        return None


def fold_in_task(runner: str, center: np.ndarray, hook: TaskHook | None,
                 request: PassRequest, blocks: Iterable[Block]) -> list[Any] | None:
    """In a task of ``runner`` ("job", "resident"): the hook, then ``request`` folded over
    the task's blocks."""
    if hook is not None:
        hook(runner, request)
    return fold_blocks(request, center, blocks)


def _fold_partition(request: Broadcast[PassRequest], center: np.ndarray,
                    hook: TaskHook | None, blocks: Iterator[Block]) -> list[Any] | None:
    return fold_in_task("job", center, hook, request.value, blocks)


class JobPassRunner(StatelessRunner):
    """Every pass one Spark job: each partition's blocks folded where its file lives,
    merged by ``treeReduce``.

    Parameters
    ----------
    store : BlockStore
        The feature blocks (written by the first pass).
    center : ndarray of shape (D,)
        The data mean; requests are expressed relative to it.
    depth : int
        ``treeReduce`` depth (the ``aggregationDepth`` param).
    task_hook : callable or None
        See :data:`TaskHook`.
    counters : PassCounters or None
        Where to count the passes (a resident runner shares its own); new ones by default.
    """

    def __init__(self, store: BlockStore, center: np.ndarray, depth: int,
                 task_hook: TaskHook | None = None, counters: PassCounters | None = None
                 ) -> None:
        self.store = store
        self.center = center
        self.depth = depth
        self.task_hook = task_hook
        self.counters = counters if counters is not None else PassCounters()

    def run(self, request: PassRequest) -> list[Any]:
        self.counters.job_passes += 1
        context = self.store.handles.context
        # As many tasks as the application has slots, each with near-equal rows, where the
        # partitions are not as even already.
        layout = self.store.layout(slot_count(context) or context.defaultParallelism,
                                   executor_hosts(context) or 1)
        self.counters.task_rows = (layout.task_rows if layout is not None
                                   else self.store.partition_rows)
        # The request travels once per executor (mixtures of full covariances can be large).
        broadcast = context.broadcast(request)
        try:
            merged = self.store.aggregate(
                partial(_fold_partition, broadcast, self.center, self.task_hook), merge_all,
                self.depth, layout)
        finally:
            broadcast.destroy()
        assert merged is not None, "validation rejects empty input before any pass"
        return merged
