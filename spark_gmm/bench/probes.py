"""CPU time and peak memory of local processes, for the benchmark.

In local mode Spark's Python workers are descendants of the driver's JVM (forked by the
PySpark daemon), so what they use can be read here without touching the library code they
run. psutil walks the process tree and reads CPU times; the peak resident set size is read
from ``/proc/PID/status`` (``VmHWM``, the kernel's own high-water mark, which psutil does not
expose): it needs no sampling, but counts every page the process has touched, including
those of memory-mapped files (page cache, shared) and those inherited from its parent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

import psutil


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` in the process tree (not ``root`` itself)."""
    try:
        return [child.pid for child in psutil.Process(root).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every thread of the process so far (0.0 if it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def proc_kib_bytes(path: str, key: str) -> int | None:
    """The ``key: N kB`` line of a /proc file in bytes, or None (no file, or no such line)."""
    try:
        with open(path) as stream:
            for line in stream:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes(pid: int) -> int | None:
    """The process's peak resident set size (``VmHWM``), or None if it is gone."""
    return proc_kib_bytes(f"/proc/{pid}/status", "VmHWM:")


def _is_python(pid: int) -> bool:
    try:
        return os.path.basename(psutil.Process(pid).exe()).startswith("python")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def python_descendants(root: int) -> list[int]:
    """The Python processes below ``root``, except this one (under spark-submit the driver's
    Python is itself a child of the JVM)."""
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


class JvmHeapPeak:
    """The driver JVM's heap high-water mark over a stretch of work, from its own memory
    pools (``MemoryPoolMXBean``): peaks reset at the start, read at the end.

    The sum of each heap pool's peak bounds the true simultaneous peak from above (the
    pools need not peak at the same moment); it misses nothing between samples, as no
    sampling is involved.
    """

    def __init__(self, jvm: object) -> None:
        factory = jvm.java.lang.management.ManagementFactory  # type: ignore[attr-defined]
        self._pools = [pool for pool in factory.getMemoryPoolMXBeans()
                       if pool.getType().name() == "HEAP"]
        for pool in self._pools:
            pool.resetPeakUsage()

    def bytes(self) -> int:
        return sum(int(pool.getPeakUsage().getUsed()) for pool in self._pools)
