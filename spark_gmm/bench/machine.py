"""The record a benchmark result file carries: which code, when, on what machine, how run.

``spark-gmm bench --output FILE.json`` writes :func:`result_record` of the run: the commit
(``git rev-parse HEAD`` when the code sits in a git checkout, else ``"unknown"``), the date
(UTC, ISO 8601), :func:`machine` (CPU, cores, memory, the BLAS numpy calls, the versions
that matter), the command's parameters and the whole results, every round included. A
figure quoted in the docs is then read from a named file, with the setup it was measured on.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from typing import Any

from .probes import proc_kib_bytes

# The CPU flags that decide which kernels numpy's exp and OpenBLAS's GEMMs run.
CPU_FLAGS = ("avx2", "avx512f")
# OpenBLAS reads these at load time: they override the kernels it would pick for the CPU.
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _git(where: str, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True,
                                timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def commit(directory: str | None = None) -> str:
    """The git commit of ``directory`` (default: this package's), ``"<sha>-dirty"`` when the
    package's files differ from it, or ``"unknown"`` outside a checkout. Read when the run
    starts: the code measured is the code loaded then."""
    where = directory or os.path.dirname(os.path.abspath(__file__))
    sha = _git(where, "rev-parse", "HEAD")
    if not sha:
        return "unknown"
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    changed = _git(where, "status", "--porcelain", "--", package) if directory is None else ""
    return f"{sha}-dirty" if changed else sha


def _cpu() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"model": model, "flags": {flag: flag in flags for flag in CPU_FLAGS},
            "cores": os.cpu_count(), "usable_cores": usable}


def _memory_bytes() -> int | None:
    return proc_kib_bytes("/proc/meminfo", "MemTotal:")


def _blas() -> list[dict[str, Any]]:
    import numpy  # noqa: F401  (loads the BLAS threadpoolctl then finds)
    from threadpoolctl import threadpool_info

    return [{"library": info.get("internal_api"), "version": info.get("version"),
             "architecture": info.get("architecture"), "threads": info.get("num_threads"),
             "filepath": info.get("filepath")}
            for info in threadpool_info() if info.get("user_api") == "blas"]


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def machine(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the benchmark ran on.

    Parameters
    ----------
    environ : Mapping[str, str], optional
        The environment to read the OpenBLAS variables from (default ``os.environ``).

    Returns
    -------
    dict
        ``cpu`` (model, ``flags`` avx2/avx512f as booleans, ``cores``, ``usable_cores``),
        ``memory_bytes``, ``blas`` (one entry per BLAS library loaded: library, version,
        kernel architecture, threads), ``versions`` (python, numpy, pyspark),
        ``openblas_environment`` (each variable: ``{"set": bool, "value": str | None}``).
    """
    env = os.environ if environ is None else environ
    return {"cpu": _cpu(), "memory_bytes": _memory_bytes(), "blas": _blas(),
            "versions": {"python": platform.python_version(), "numpy": _version("numpy"),
                         "pyspark": _version("pyspark")},
            "platform": platform.platform(),
            "openblas_environment": {name: {"set": name in env, "value": env.get(name)}
                                     for name in OPENBLAS_VARIABLES}}


def result_record(results: Mapping[str, Any], parameters: Mapping[str, Any],
                  measured_commit: str) -> dict[str, Any]:
    """The result file's content.

    Parameters
    ----------
    results : Mapping[str, Any]
        What the benchmark returned (every round's numbers, not only medians).
    parameters : Mapping[str, Any]
        The command's parameters (``spark-gmm bench``'s options, by name).
    measured_commit : str
        :func:`commit` as the run started.

    Returns
    -------
    dict
        ``commit``, ``date`` (UTC, ISO 8601), ``machine`` (see :func:`machine`),
        ``parameters`` and ``results``.
    """
    return {"commit": measured_commit,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine(), "parameters": dict(parameters), "results": dict(results)}


def write_result(path: str, record: Mapping[str, Any]) -> None:
    """Write ``record`` as indented JSON to ``path`` (its directory is created)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(record, handle, indent=2, default=str)
        handle.write("\n")
