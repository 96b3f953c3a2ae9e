"""Peak memory of processes on this machine, read from Linux's /proc (for the benchmark).

In local mode Spark's Python workers are descendants of the driver's JVM (forked by the
PySpark daemon), so their peak resident set sizes can be read here without touching the
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


def _parent_pid(pid: int) -> int | None:
    try:
        with open(os.path.join(_PROC, str(pid), "stat")) as stream:
            stat = stream.read()
    except OSError:  # the process ended while we looked
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return int(stat[stat.rindex(")") + 2:].split()[1])


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


def python_descendants_peak_rss(root: int) -> tuple[int, int] | None:
    """(largest peak RSS in bytes, number of processes) over the Python processes below
    ``root``; None when there are none or /proc cannot be read."""
    if not os.path.isdir(_PROC):
        return None
    peaks = [peak for peak in (peak_rss_bytes(pid) for pid in descendants(root)
                               if _is_python(pid)) if peak is not None]
    return (max(peaks), len(peaks)) if peaks else None


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
