"""CPU time and peak memory of processes on this machine, read from Linux's /proc.

For the benchmark: in local mode Spark's Python workers are descendants of the driver's JVM
(forked by the PySpark daemon), so what they use can be read here without touching the
library code they run. ``VmHWM`` is the kernel's own high-water mark of a process's RSS: it
needs no sampling, but it counts every page the process has touched, including those of
memory-mapped files (page cache, shared) and those inherited from its parent at fork.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

_PROC = "/proc"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(os.path.join(_PROC, str(pid), "stat")) as stream:
            stat = stream.read()
    except OSError:  # the process ended while we looked
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses;
    # the fields after it start with the state (field 3 of proc(5)).
    return stat[stat.rindex(")") + 2:].split()


def _parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every thread of the process so far (0.0 if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` in the process tree (not ``root`` itself)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir(_PROC):
        if entry.isdigit():
            parent = _parent_pid(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found, frontier = [], [root]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += below
    return found


def peak_rss_bytes(pid: int) -> int | None:
    """The process's peak resident set size (``VmHWM``), or None if it is gone."""
    try:
        with open(os.path.join(_PROC, str(pid), "status")) as stream:
            for line in stream:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _is_python(pid: int) -> bool:
    try:
        return os.path.basename(os.readlink(os.path.join(_PROC, str(pid), "exe"))).startswith(
            "python")
    except OSError:
        return False


def python_descendants(root: int) -> list[int]:
    """The Python processes below ``root``, except this one (under spark-submit the driver's
    Python is itself a child of the JVM); empty where there is no /proc."""
    if not os.path.isdir(_PROC):
        return []
    return [pid for pid in descendants(root) if pid != os.getpid() and _is_python(pid)]


def largest_peak_rss(pids: Sequence[int]) -> int | None:
    """The largest peak RSS in bytes among ``pids`` (None if none of them is alive)."""
    peaks = [peak for peak in map(peak_rss_bytes, pids) if peak is not None]
    return max(peaks) if peaks else None


def imports_peak_rss_bytes(modules: Sequence[str]) -> int:
    """Peak RSS of a fresh interpreter that only imports ``modules``: what any Python worker
    running them carries before it touches data."""
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so the
    # child would report its parent's peak whenever that is larger.
    code = "; ".join([f"import {name}" for name in modules] + [
        "status = open('/proc/self/status').read()",
        "print(status.split('VmHWM:')[1].split()[0])",  # kB
    ])
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    return int(output.split()[-1]) * 1024


class CpuMeter:
    """CPU seconds used since creation by a process (all its threads: for a JVM, scheduler,
    JIT compilers, GC and task threads), by the Python processes below it (those started
    since included) and by this process.

    Parameters
    ----------
    root : int
        The process to watch, in the benchmark the driver's JVM.
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self.start = self._snapshot()

    def _snapshot(self) -> tuple[float, dict[int, float], float]:
        own = os.times()
        return (cpu_seconds(self.root),
                {pid: cpu_seconds(pid) for pid in python_descendants(self.root)},
                own.user + own.system)

    def used(self) -> dict[str, float]:
        """``{"jvm", "python_workers", "driver_python"}`` CPU seconds since creation."""
        root, workers, own = self._snapshot()
        start_root, start_workers, start_own = self.start
        return {"jvm": root - start_root,
                "python_workers": sum(seconds - start_workers.get(pid, 0.0)
                                      for pid, seconds in workers.items()),
                "driver_python": own - start_own}
