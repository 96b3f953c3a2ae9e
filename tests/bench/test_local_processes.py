"""The benchmark's /proc probes, checked against processes of known size and CPU use."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from spark_gmm.bench.probes import (
    CpuMeter,
    descendants,
    imports_peak_rss_bytes,
    largest_peak_rss,
    peak_rss_bytes,
    python_descendants,
)

MB = 1 << 20

# A child that starts a grandchild; the grandchild touches 120 MB, frees it, reports its pid
# and waits. Its peak must still show the 120 MB.
_TREE = textwrap.dedent("""
    import subprocess, sys
    grandchild = subprocess.Popen([sys.executable, "-c",
        "import os, sys; ballast = b'x' * (120 << 20); del ballast; "
        "print(os.getpid(), flush=True); sys.stdin.read()"], stdin=subprocess.PIPE)
    sys.stdin.read()
    grandchild.kill()
""")


def test_descendants_and_their_peak_memory() -> None:
    child = subprocess.Popen([sys.executable, "-c", _TREE], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        below = descendants(child.pid)
        assert below == [grandchild]
        assert {child.pid, grandchild} <= set(descendants(os.getpid()))
        assert peak_rss_bytes(grandchild) >= 120 * MB
        assert peak_rss_bytes(child.pid) < 100 * MB
        assert python_descendants(child.pid) == [grandchild]
        assert largest_peak_rss([child.pid, grandchild]) == peak_rss_bytes(grandchild)
    finally:
        child.kill()
        child.wait()
    assert peak_rss_bytes(child.pid) is None  # gone (reaped)


def test_imports_peak_counts_what_the_import_allocates(tmp_path, monkeypatch) -> None:
    (tmp_path / "ballast_module.py").write_text("ballast = b'x' * (80 << 20)\n")
    (tmp_path / "empty_module.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    extra = imports_peak_rss_bytes(["ballast_module"]) - imports_peak_rss_bytes(["empty_module"])
    # a few pages either way: allocator and interpreter noise between two processes
    assert 78 * MB <= extra <= 84 * MB


# A child that, once told to, starts a grandchild burning 0.5 s of CPU; both then wait.
_BUSY_TREE = textwrap.dedent("""
    import subprocess, sys
    sys.stdin.readline()
    busy = subprocess.Popen([sys.executable, "-c",
        "import sys, time\\nend = time.process_time() + 0.5\\n"
        "while time.process_time() < end: pass\\n"
        "print('done', flush=True)\\nsys.stdin.read()"], stdin=subprocess.PIPE)
    sys.stdin.read()
    busy.kill()
""")


def test_cpu_meter_counts_workers_started_after_it() -> None:
    child = subprocess.Popen([sys.executable, "-c", _BUSY_TREE], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        meter = CpuMeter(child.pid)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        used = meter.used()
        # 0.5 s of busy loop plus the interpreter's start-up, at 10 ms clock ticks
        assert 0.49 <= used["python_workers"] <= 1.0
        assert used["jvm"] < 0.2  # the watched process itself only waited
        assert used["driver_python"] < 0.2  # and so did this one
    finally:
        child.kill()
        child.wait()
