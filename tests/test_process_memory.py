"""Peak-memory probes of the benchmark, checked against processes of known size."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from spark_gmm.etl.process_memory import (
    descendants,
    imports_peak_rss_bytes,
    peak_rss_bytes,
    python_descendants_peak_rss,
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
        peak, processes = python_descendants_peak_rss(child.pid)
        assert (peak, processes) == (peak_rss_bytes(grandchild), 1)
    finally:
        child.kill()
        child.wait()
    assert peak_rss_bytes(child.pid) is None  # gone (reaped)


def test_imports_peak_counts_what_the_import_allocates(tmp_path, monkeypatch) -> None:
    (tmp_path / "ballast_module.py").write_text("ballast = b'x' * (80 << 20)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    extra = imports_peak_rss_bytes(["ballast_module"]) - imports_peak_rss_bytes(["json"])
    assert 80 * MB <= extra <= 90 * MB
