"""What an EM iteration cannot go below on this machine: FLOPs at the measured GEMM rate.

Two floors, each the FLOPs of one E+M iteration over all rows divided by the rate numpy's BLAS
reaches on one core for the GEMM shapes that do them, times the cores:

- **direct**: the per-component projections (rows × D by D × K·D) and second moments of the
  textbook algorithm, 4·n·K·D² FLOPs;
- **packed**: the packed kernel's own two GEMMs (:mod:`spark_gmm.kernels.packed`),
  W (K, M) @ Φ (M, chunk) and Γ (K, chunk) @ Φᵀ (chunk, M), 4·n·K·M FLOPs with
  M = D(D+1)/2 + D + 1. At D = 50 that is about half the direct count; the kernel may do
  less than either where responsibilities are exact zeros.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable

import numpy as np

from ..kernels.estep import exact_chunk_rows
from ..kernels.packed import n_packed_features, packed_chunk_rows
from ..runtime.progress import phase

logger = logging.getLogger(__name__)


def _rate(gemms: Callable[[], None], flops_per_call: float, what: str) -> tuple[float, list]:
    # About a second of GEMMs per sample; the median of 5 samples resists noise.
    from threadpoolctl import threadpool_limits

    repeats = max(3, int(2e9 / flops_per_call))
    with threadpool_limits(limits=1), phase(f"benchmark: the GEMM floor, {what}", logger):
        gemms()
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(repeats):
                gemms()
            samples.append(time.perf_counter() - started)
    return repeats * flops_per_call / statistics.median(samples), samples


def gemm_floor(n: int, d: int, k: int, cores: int) -> dict[str, float]:
    """The direct algorithm's floor: ``flops_per_iteration``, the one-core
    ``gemm_flops_per_second_per_core`` on its projection shape, ``cores``,
    ``floor_seconds`` and the five ``sample_seconds``."""
    flops = 2.0 * n * d * k * d + 2.0 * k * n * d * d  # projections + second moments
    rows = exact_chunk_rows(k, d)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(rows, d)), rng.normal(size=(d, k * d))
    out = np.empty((rows, k * d))
    rate, samples = _rate(lambda: np.matmul(a, b, out=out), 2.0 * rows * d * k * d,
                          "direct algorithm")
    return {"flops_per_iteration": flops, "gemm_flops_per_second_per_core": rate,
            "cores": cores, "floor_seconds": flops / (rate * cores), "sample_seconds": samples}


def packed_floor(n: int, d: int, k: int, cores: int) -> dict[str, float]:
    """The packed kernel's floor, the same keys as :func:`gemm_floor`, its rate measured on
    the kernel's E-step and M-step GEMM shapes of one chunk (``chunk_rows``) together."""
    m, rows = n_packed_features("full", d), packed_chunk_rows("full", d)
    rng = np.random.default_rng(1)
    weights, phi, resp = (rng.normal(size=(k, m)), rng.normal(size=(m, rows)),
                          rng.random((k, rows)))
    scores, sums = np.empty((k, rows)), np.empty((k, m))

    def both() -> None:
        np.matmul(weights, phi, out=scores)
        np.matmul(resp, phi.T, out=sums)

    rate, samples = _rate(both, 4.0 * k * m * rows, "packed kernel")
    flops = 4.0 * n * k * m
    return {"flops_per_iteration": flops, "gemm_flops_per_second_per_core": rate,
            "cores": cores, "chunk_rows": rows, "floor_seconds": flops / (rate * cores),
            "sample_seconds": samples}
