"""Every task slot busy, whatever the input's partitioning.

The first pass stores each input partition's rows in one file on the executor that read it
(:mod:`.block_store`), so the input's partitioning decides where the rows are: a Parquet file
with one row group reads as partitions of [N, 0] rows. Two steps spread the work again:

- **Within a host**, the passes' tasks take *slices* (row ranges of the stored files) instead
  of whole partitions: :func:`plan_layout` cuts the rows of each host into as many near-equal
  runs of rows as that host gets tasks, so the tasks of a pass have near-equal rows however
  the partitions are sized. A task runs where the cached handle of its largest slice is
  (:meth:`TaskLayout.rdd`), and every task of a host reads that host's files (their paths are
  absolute). Nothing is copied: a slice is a view of the memory-mapped file.
- **Across hosts**, rows cannot move without being sent: when the first pass finds one host
  holding more than :data:`REBALANCE_RATIO` times its share of the rows (and at least
  :data:`MIN_REBALANCE_ROWS` rows in all), the fit stores the rows once more from the input
  repartitioned evenly (:func:`rebalance_partitions`); one more read of the input and one
  shuffle, once, against every later pass running on all hosts. On Spark Connect, whose
  passes are one task per stored partition, the same rule is applied to the partitions.

The ``balanceRows`` param turns both off (one task per stored partition, as the input is
partitioned). What is summed does not change, only in which order: every result stays
within rounding of the same fit on evenly partitioned rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple

from pyspark import RDD

if TYPE_CHECKING:
    from .block_store import StoredPartition

# The largest share of the rows one host (Connect: one partition) may hold, relative to the
# mean, before the fit stores the rows again evenly.
REBALANCE_RATIO = 1.5
# Below this many rows a rebalance is not worth its extra read and shuffle of the input.
MIN_REBALANCE_ROWS = 100_000
# No task takes fewer rows than this when slicing (unless the fit has fewer rows).
MIN_TASK_ROWS = 1024
# Whole partitions serve the tasks as before when their best assignment to the tasks is
# within this factor of an even split.
WHOLE_PARTITIONS_TOLERANCE = 1.1


class Slice(NamedTuple):
    """Rows ``[start, stop)`` of the stored partition ``partition``."""

    partition: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def _apportion(weights: Sequence[int], n: int, cap: int) -> list[int]:
    # Up to n seats over the weights, at least one and at most ``cap`` each, each next seat
    # to the largest weight per seat (D'Hondt): the largest share any one seat holds is as
    # small as it can be.
    seats = [1] * len(weights)
    for _ in range(n - len(weights)):
        open_ = [i for i in range(len(weights)) if seats[i] < cap]
        if not open_:
            break
        seats[max(open_, key=lambda i: (weights[i] / seats[i], -i))] += 1
    return seats


def _largest_bin(rows: Sequence[int], n_bins: int) -> int:
    # Longest-processing-time assignment of whole partitions to n_bins tasks: its largest.
    bins = [0] * n_bins
    for n in sorted(rows, reverse=True):
        bins[bins.index(min(bins))] += n
    return max(bins)


@dataclass(frozen=True)
class TaskLayout:
    """Which rows each task of a pass takes.

    Attributes
    ----------
    tasks : tuple of tuple of Slice
        Per task, its slices (all on one host).
    width : int
        The most tasks anchored at one partition.
    indices : tuple of int
        Per task, its partition in :meth:`rdd` (``anchor * width + j``).
    """

    tasks: tuple[tuple[Slice, ...], ...]
    width: int
    indices: tuple[int, ...]

    @property
    def task_rows(self) -> list[int]:
        """Rows per task, in task order."""
        return [sum(s.rows for s in task) for task in self.tasks]

    def by_index(self) -> dict[int, tuple[int, tuple[Slice, ...]]]:
        """(task number, slices) by the task's partition index in :meth:`rdd`."""
        return {index: (task, slices)
                for task, (index, slices) in enumerate(zip(self.indices, self.tasks))}

    def rdd(self, handles: RDD) -> RDD:
        """``width`` partitions per cached handle partition (a cartesian product with
        ``range(width)``): partition ``anchor * width + j`` is scheduled where the cached
        handle of partition ``anchor`` is, as a narrow dependency of it."""
        width = handles.context.parallelize(range(self.width), self.width)
        return handles.cartesian(width)


def plan_layout(partitions: Sequence[StoredPartition], n_tasks: int, n_hosts: int = 1
                ) -> TaskLayout | None:
    """Slices of near-equal rows for ``n_tasks`` tasks (fewer when a host would get more
    than its ``ceil(n_tasks / n_hosts)``: its tasks would wait for slots, then run where its
    files are not), each task's slices on one host; or None when whole partitions serve the
    tasks about as evenly (see :data:`WHOLE_PARTITIONS_TOLERANCE`), when there are fewer
    tasks than hosts with rows, or too few rows for ``n_tasks`` tasks of
    :data:`MIN_TASK_ROWS` (ask for fewer: see ``RowStore.max_tasks``).

    Parameters
    ----------
    partitions : sequence of StoredPartition
        Every stored partition, in partition order (``store.stored_partitions()``).
    n_tasks : int
        The tasks the pass may have.
    n_hosts : int
        The hosts the application has executors on (taken to have as many slots each).
    """
    stored = [p for p in partitions if p.n_rows > 0]
    total = sum(p.n_rows for p in stored)
    if not stored or n_tasks < 1 or total // MIN_TASK_ROWS < n_tasks:
        return None
    even = total / n_tasks
    if (len(stored) >= n_tasks and _largest_bin([p.n_rows for p in stored], n_tasks)
            <= WHOLE_PARTITIONS_TOLERANCE * even):
        return None
    hosts: dict[str, list[StoredPartition]] = {}
    for p in stored:
        hosts.setdefault(p.host, []).append(p)
    if len(hosts) > n_tasks:
        return None
    seats = _apportion([sum(p.n_rows for p in on) for on in hosts.values()], n_tasks,
                       -(-n_tasks // max(n_hosts, len(hosts))))
    tasks: list[tuple[Slice, ...]] = []
    for on, n in zip(hosts.values(), seats):
        tasks.extend(_cut(on, n))
    tasks = [task for task in tasks if task]
    anchors = [max(task, key=lambda s: s.rows).partition for task in tasks]
    anchored: dict[int, int] = {}
    places = []  # the task's place among those anchored at the same partition
    for anchor in anchors:
        places.append(anchored.get(anchor, 0))
        anchored[anchor] = places[-1] + 1
    width = max(anchored.values())
    return TaskLayout(tuple(tasks), width,
                      tuple(a * width + j for a, j in zip(anchors, places)))


def _cut(partitions: Sequence[StoredPartition], n: int) -> list[tuple[Slice, ...]]:
    # The host's rows, partition after partition, cut into n runs of near-equal length.
    total = sum(p.n_rows for p in partitions)
    bounds = [total * i // n for i in range(n + 1)]
    tasks = []
    for low, high in pairwise(bounds):
        slices, offset = [], 0
        for p in partitions:
            start, stop = max(low - offset, 0), min(high - offset, p.n_rows)
            if start < stop:
                slices.append(Slice(p.partition, start, stop))
            offset += p.n_rows
        tasks.append(tuple(slices))
    return tasks


def skewed(rows: Sequence[int], ratio: float = REBALANCE_RATIO,
           min_rows: int | None = None) -> bool:
    """Whether the largest of ``rows`` (per host, or per partition) exceeds ``ratio`` times
    their mean, with at least ``min_rows`` (default :data:`MIN_REBALANCE_ROWS`) in all."""
    total = sum(rows)
    floor = MIN_REBALANCE_ROWS if min_rows is None else min_rows
    return bool(rows) and total >= floor and max(rows) > ratio * total / len(rows)


def host_rows(partitions: Sequence[StoredPartition], n_hosts: int) -> list[int]:
    """Rows stored per host, over ``n_hosts`` hosts (hosts that stored nothing count 0)."""
    on: dict[str, int] = {}
    for p in partitions:
        if p.n_rows:
            on[p.host] = on.get(p.host, 0) + p.n_rows
    return sorted(on.values(), reverse=True) + [0] * max(0, n_hosts - len(on))


def rebalance_partitions(partitions: Sequence[StoredPartition], n_hosts: int | None,
                         parallelism: int) -> int | None:
    """The partitions to store the rows in again, or None when they stay as stored.

    Parameters
    ----------
    partitions : sequence of StoredPartition
        What the first pass stored.
    n_hosts : int or None
        Hosts with executors (classic sessions; tasks share the rows of one host by
        slicing, so only skew across hosts counts); None on Spark Connect, where the
        partitions themselves must be even.
    parallelism : int
        The application's task slots: the rows go into at least as many partitions.
    """
    rows = ([p.n_rows for p in partitions] if n_hosts is None
            else host_rows(partitions, n_hosts))
    if not skewed(rows):
        return None
    return max(len(partitions), parallelism)


def rows_in_words(rows: Sequence[int]) -> str:
    """``[600000, 400000]``, or for many values their count, smallest, largest and mean."""
    if len(rows) <= 8:
        return "[" + ", ".join(str(n) for n in rows) + "]"
    return (f"{len(rows)} values from {min(rows)} to {max(rows)} (mean "
            f"{sum(rows) / len(rows):.0f})")


def spread(rows: Sequence[int]) -> float:
    """The largest of ``rows`` over their mean (1.0: even; 0 when there are none)."""
    total = sum(rows)
    return max(rows) * len(rows) / total if total else 0.0
