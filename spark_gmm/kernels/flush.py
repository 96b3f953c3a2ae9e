"""exp without subnormal results: responsibilities too small to be normal doubles are 0.

A double below 2.2e-308 (``finfo.tiny``) is subnormal: exact zero would change no sum it
enters by more than 1e-307, yet numpy's AVX-512 ``exp`` takes 33-71 ns for a subnormal
result against ~1 ns for a normal one (measured on this project's machines), and every
division and GEMM it enters slows too. Inputs below about -707.70 already leave the vector
path (-707.69: 1.2 ns, -707.70: 13 ns), and results that round to 0.0 cost ~8 ns. In later
EM iterations of a well-separated mixture many responsibilities are that small: from a
random-rows start at 500k × 10 × 8 an iteration on one core went from 0.075 s to 0.13 s by
the eighth (the "subnormal cliff"). So no exponent below :data:`SLOW_BELOW`, nor any that
would give a responsibility below the smallest normal double, is computed: its result is
0.0.
"""

from __future__ import annotations

import math

import numpy as np

from .covariance import FloatArray

LOG_TINY = math.log(np.finfo(np.float64).tiny)  # -708.396...
# Results below e^-707.6 ≈ 2.2 × tiny are flushed whatever the normalisation.
SLOW_BELOW = -707.6


def flush_cut(n_terms: int) -> float:
    """The exponent below which results are flushed, for responsibilities normalised by a
    sum of up to ``n_terms`` values ≤ 1 (≥ 1, since the largest is 1): anything kept, divided
    by that sum, is still a normal double, and was computed on numpy's fast path."""
    return max(SLOW_BELOW, LOG_TINY + math.log(max(1, n_terms)))


def exp_flushed_in_place(values: FloatArray, n_terms: int = 1) -> None:
    """``values`` (C- or F-contiguous, ≤ 0 where finite) replaced by their exp in place, every
    result that would be below ``flush_cut(n_terms)`` set to exactly 0.0; NaN stays NaN.

    Equal to ``np.exp`` wherever it is kept; a flushed result differs from ``np.exp``'s by
    less than ``max(n_terms, 2.2) × 2.2e-308``.
    """
    flat = values.ravel(order="K")  # memory order: a view of either layout
    if not np.may_share_memory(flat, values):
        raise ValueError("exp_flushed_in_place needs a contiguous array; got a strided one")
    cut = flush_cut(n_terms)
    kept = flat >= cut  # False for NaN too, which stays NaN below (NaN × 0 is NaN)
    if kept.all():
        np.exp(flat, out=flat)
        return
    # Masked writes (copyto/putmask) cost 3-4 ns per value here; these ufuncs ~0.5 ns:
    # raise the flushed inputs to the cut (fast exp), then multiply their results by 0.
    np.maximum(flat, cut, out=flat)
    np.exp(flat, out=flat)
    np.multiply(flat, kept, out=flat)
