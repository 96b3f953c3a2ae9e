"""Dense linear algebra the covariance classes share: the float array type, log 2π, the
precision-Cholesky factor of one matrix, its largest eigenpair, and the weighted moments of
rows about per-component shifts (matrix or diagonal)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ..errors import CovarianceError

FloatArray = NDArray[np.float64]
LOG_2PI = math.log(2.0 * math.pi)


def cholesky_precision(cov: FloatArray, component: int | None) -> FloatArray:
    """P = L⁻ᵀ for cov = L Lᵀ [D, D]; CovarianceError naming ``component`` when not PD."""
    try:
        lower = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise CovarianceError(component) from None
    if not np.all(np.isfinite(lower)) or np.any(np.diag(lower) <= 0.0):
        raise CovarianceError(component)
    # Triangular solve L Y = I; the transpose of L⁻¹ is the precision factor.
    return np.linalg.solve(lower, np.eye(cov.shape[0])).T


def largest_eigenpair(c: FloatArray) -> tuple[FloatArray, float]:
    """The eigenvector [D] of the largest eigenvalue of the symmetric ``c``, and that value."""
    values, vectors = np.linalg.eigh(c)
    return vectors[:, -1], float(values[-1])


def outer_moments(x: FloatArray, resp: FloatArray, shift: FloatArray
                  ) -> tuple[FloatArray, FloatArray]:
    """Σ_n γ_nk (x_n − s_k) [K, D] and Σ_n γ_nk (x_n − s_k)(x_n − s_k)ᵀ [K, D, D] from x [n, D],
    γ [n, K] and shifts s [K, D]."""
    n_components, n_features = shift.shape
    first = np.empty((n_components, n_features))
    second = np.empty((n_components, n_features, n_features))
    sqrt_resp = np.sqrt(resp)
    for k in range(n_components):
        scaled = (x - shift[k]) * sqrt_resp[:, k : k + 1]
        first[k] = sqrt_resp[:, k] @ scaled
        # Aᵀ A on the same buffer lets numpy use a symmetric rank-k update.
        second[k] = scaled.T @ scaled
    return first, second


def square_moments(x: FloatArray, resp: FloatArray, shift: FloatArray
                   ) -> tuple[FloatArray, FloatArray]:
    """Σ_n γ_nk (x_n − s_k) and Σ_n γ_nk (x_n − s_k)² per feature, both [K, D]."""
    first = np.empty_like(shift)
    second = np.empty_like(shift)
    for k in range(shift.shape[0]):
        diff = x - shift[k]
        first[k] = resp[:, k] @ diff
        diff *= diff
        second[k] = resp[:, k] @ diff
    return first, second
