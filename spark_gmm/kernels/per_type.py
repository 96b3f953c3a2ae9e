"""The small per-covariance-type functions behind :data:`~spark_gmm.kernels.covariance.KERNELS`.

Each group has one function per type, named ``<what>_<type>``; nothing here is called except
through that table. Shapes and the precision-Cholesky convention are described in
:mod:`spark_gmm.kernels.covariance`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ..errors import CovarianceError

FloatArray = NDArray[np.float64]
LOG_2PI = math.log(2.0 * math.pi)


def cholesky_precision(cov: FloatArray, component: int | None) -> FloatArray:
    try:
        lower = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise CovarianceError(component) from None
    if not np.all(np.isfinite(lower)) or np.any(np.diag(lower) <= 0.0):
        raise CovarianceError(component)
    # Triangular solve L Y = I; the transpose of L⁻¹ is the precision factor.
    identity = np.eye(cov.shape[0])
    return np.linalg.solve(lower, identity).T


def check_positive(variances: FloatArray, components: NDArray[np.intp] | None) -> None:
    bad = ~(np.isfinite(variances) & (variances > 0.0))
    if np.any(bad):
        if components is None:
            raise CovarianceError(None)
        flat = np.argwhere(bad)
        raise CovarianceError(int(components[flat[0][0]]))


# --- precision Cholesky factors -------------------------------------------------------------

def precision_cholesky_full(covariances: FloatArray) -> FloatArray:
    return np.stack([cholesky_precision(c, k) for k, c in enumerate(covariances)])


def precision_cholesky_tied(covariances: FloatArray) -> FloatArray:
    return cholesky_precision(covariances, None)


def precision_cholesky_diag(covariances: FloatArray) -> FloatArray:
    check_positive(covariances, np.arange(covariances.shape[0]))
    return 1.0 / np.sqrt(covariances)


def precision_cholesky_spherical(covariances: FloatArray) -> FloatArray:
    check_positive(covariances, np.arange(covariances.shape[0]))
    return 1.0 / np.sqrt(covariances)


# --- log det of the precision factor, per component [K] --------------------------------------

def log_det_full(prec_chol: FloatArray, n_features: int) -> FloatArray:
    return np.sum(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)


def log_det_tied(prec_chol: FloatArray, n_features: int) -> FloatArray:
    return np.asarray(np.sum(np.log(np.diag(prec_chol))))


def log_det_diag(prec_chol: FloatArray, n_features: int) -> FloatArray:
    return np.sum(np.log(prec_chol), axis=1)


def log_det_spherical(prec_chol: FloatArray, n_features: int) -> FloatArray:
    return n_features * np.log(prec_chol)


# --- squared Mahalanobis distances [n, K] -----------------------------------------------------

def mahalanobis_full(x: FloatArray, means: FloatArray, prec_chol: FloatArray) -> FloatArray:
    n_components, n_features = means.shape
    # One GEMM projects the block onto every component's factor at once: [n, K*D].
    stacked = prec_chol.transpose(1, 0, 2).reshape(n_features, n_components * n_features)
    projected = x @ stacked
    projected -= np.einsum("kd,kde->ke", means, prec_chol).reshape(1, -1)
    per_component = projected.reshape(x.shape[0], n_components, n_features)
    # einsum squares and sums in one pass; 2x faster than ``**2`` then ``.sum(axis=2)``
    return np.einsum("nkd,nkd->nk", per_component, per_component)


def mahalanobis_tied(x: FloatArray, means: FloatArray, prec_chol: FloatArray) -> FloatArray:
    projected_x = x @ prec_chol
    projected_means = means @ prec_chol
    out = np.empty((x.shape[0], means.shape[0]))
    for k, center in enumerate(projected_means):
        diff = projected_x - center
        out[:, k] = np.einsum("nd,nd->n", diff, diff)
    return out


def mahalanobis_diag(x: FloatArray, means: FloatArray, prec_chol: FloatArray) -> FloatArray:
    out = np.empty((x.shape[0], means.shape[0]))
    for k in range(means.shape[0]):
        scaled = (x - means[k]) * prec_chol[k]
        out[:, k] = np.einsum("nd,nd->n", scaled, scaled)
    return out


def mahalanobis_spherical(x: FloatArray, means: FloatArray, prec_chol: FloatArray) -> FloatArray:
    out = np.empty((x.shape[0], means.shape[0]))
    for k in range(means.shape[0]):
        diff = x - means[k]
        out[:, k] = np.einsum("nd,nd->n", diff, diff) * prec_chol[k] ** 2
    return out


# --- first and second moments about a shift, per component --------------------------------
# Σ γ (x - shift_k) and Σ γ (x - shift_k)(x - shift_k)ᵀ; diag/spherical keep only the diagonal.

def moments_full(
    x: FloatArray, resp: FloatArray, shift: FloatArray
) -> tuple[FloatArray, FloatArray]:
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


def moments_diag(
    x: FloatArray, resp: FloatArray, shift: FloatArray
) -> tuple[FloatArray, FloatArray]:
    first = np.empty_like(shift)
    second = np.empty_like(shift)
    for k in range(shift.shape[0]):
        diff = x - shift[k]
        first[k] = resp[:, k] @ diff
        diff *= diff
        second[k] = resp[:, k] @ diff
    return first, second


# --- M-step covariance from centred second moments -------------------------------------------
# ``scatter`` is Σ_n w γ_nk (x_n - μ_k)(x_n - μ_k)ᵀ (or its diagonal) per component.

def estimate_full(scatter: FloatArray, nk: FloatArray, reg: float) -> FloatArray:
    cov = scatter / nk[:, None, None]
    cov = 0.5 * (cov + cov.transpose(0, 2, 1))
    idx = np.arange(cov.shape[1])
    cov[:, idx, idx] += reg
    return cov


def estimate_tied(scatter: FloatArray, nk: FloatArray, reg: float) -> FloatArray:
    cov = scatter.sum(axis=0) / nk.sum()
    cov = 0.5 * (cov + cov.T)
    cov[np.diag_indices_from(cov)] += reg
    return cov


def estimate_diag(scatter: FloatArray, nk: FloatArray, reg: float) -> FloatArray:
    return scatter / nk[:, None] + reg


def estimate_spherical(scatter: FloatArray, nk: FloatArray, reg: float) -> FloatArray:
    return estimate_diag(scatter, nk, reg).mean(axis=1)


# --- layout: shapes, parameter counts, dense and per-component forms --------------------------

def shape_full(k: int, d: int) -> tuple[int, ...]:
    return (k, d, d)


def shape_tied(k: int, d: int) -> tuple[int, ...]:
    return (d, d)


def shape_diag(k: int, d: int) -> tuple[int, ...]:
    return (k, d)


def shape_spherical(k: int, d: int) -> tuple[int, ...]:
    return (k,)


def dense_full(c: FloatArray, k: int, d: int) -> FloatArray:
    return c


def dense_tied(c: FloatArray, k: int, d: int) -> FloatArray:
    return np.repeat(c[None], k, axis=0)


def dense_diag(c: FloatArray, k: int, d: int) -> FloatArray:
    return c[:, :, None] * np.eye(d)


def dense_spherical(c: FloatArray, k: int, d: int) -> FloatArray:
    return c[:, None, None] * np.eye(d)


# Diagonal starting covariances (every component the same) from per-feature variances [D].

def from_variances_full(v: FloatArray, k: int) -> FloatArray:
    return np.repeat(np.diag(v)[None], k, axis=0)


def from_variances_tied(v: FloatArray, k: int) -> FloatArray:
    return np.diag(v)


def from_variances_diag(v: FloatArray, k: int) -> FloatArray:
    return np.tile(v, (k, 1))


def from_variances_spherical(v: FloatArray, k: int) -> FloatArray:
    return np.full(k, v.mean())


# Covariances of the features multiplied by ``scale`` [D] (e.g. back to original units after
# standardisation). A spherical covariance scaled per feature is no longer spherical: its
# per-feature variances [K, D] are returned.

def rescaled_full(c: FloatArray, scale: FloatArray) -> FloatArray:
    return c * scale[None, :, None] * scale[None, None, :]


def rescaled_tied(c: FloatArray, scale: FloatArray) -> FloatArray:
    return c * scale[:, None] * scale[None, :]


def rescaled_diag(c: FloatArray, scale: FloatArray) -> FloatArray:
    return c * scale**2


def rescaled_spherical(c: FloatArray, scale: FloatArray) -> FloatArray:
    return c[:, None] * scale**2


# The direction [D] of component j's largest variance, and that variance (to split it).

def principal_axis_matrix(c: FloatArray) -> tuple[FloatArray, float]:
    values, vectors = np.linalg.eigh(c)
    return vectors[:, -1], float(values[-1])


def axis(d: int, i: int) -> FloatArray:
    direction = np.zeros(d)
    direction[i] = 1.0
    return direction


def principal_axis_full(c: FloatArray, j: int, d: int) -> tuple[FloatArray, float]:
    return principal_axis_matrix(c[j])


def principal_axis_tied(c: FloatArray, j: int, d: int) -> tuple[FloatArray, float]:
    return principal_axis_matrix(c)


def principal_axis_diag(c: FloatArray, j: int, d: int) -> tuple[FloatArray, float]:
    i = int(np.argmax(c[j]))
    return axis(d, i), float(c[j, i])


def principal_axis_spherical(c: FloatArray, j: int, d: int) -> tuple[FloatArray, float]:
    return axis(d, 0), float(c[j])  # every axis is principal: the first one


# Precision for the packed quadratic form: matrices Λ_k [K, D, D] (full, tied) or their
# diagonals [K, D] (diag, spherical), from the precision-Cholesky factors.

def precisions_full(p: FloatArray, k: int, d: int) -> FloatArray:
    return p @ p.transpose(0, 2, 1)


def precisions_tied(p: FloatArray, k: int, d: int) -> FloatArray:
    return np.broadcast_to(p @ p.T, (k, d, d))


def precisions_diag(p: FloatArray, k: int, d: int) -> FloatArray:
    return p * p


def precisions_spherical(p: FloatArray, k: int, d: int) -> FloatArray:
    return np.repeat((p * p)[:, None], d, axis=1)


# One row of values per component, as models are stored (the tied matrix in every row).

def rows_full(c: FloatArray, k: int) -> FloatArray:
    return c.reshape(k, -1)


def rows_tied(c: FloatArray, k: int) -> FloatArray:
    return np.repeat(c.reshape(1, -1), k, axis=0)


def rows_diag(c: FloatArray, k: int) -> FloatArray:
    return c


def rows_spherical(c: FloatArray, k: int) -> FloatArray:
    return c[:, None]


def from_rows_tied(rows: FloatArray, k: int, d: int) -> FloatArray:
    return rows[0].reshape(d, d)


def from_rows_full(rows: FloatArray, k: int, d: int) -> FloatArray:
    return rows.reshape(k, d, d)


def from_rows_diag(rows: FloatArray, k: int, d: int) -> FloatArray:
    return rows.reshape(k, d)


def from_rows_spherical(rows: FloatArray, k: int, d: int) -> FloatArray:
    return rows.reshape(k)
