"""Per-covariance-type numerics, chosen by a table keyed on ``covarianceType``.

Parameters are stored as precision-Cholesky factors (as scikit-learn does): for a covariance
``Σ = L Lᵀ`` the factor is ``P = L⁻ᵀ`` so that ``Σ⁻¹ = P Pᵀ`` and
``(x - μ)ᵀ Σ⁻¹ (x - μ) = ‖Pᵀ (x - μ)‖²``. No explicit inverse of Σ and no determinant of Σ is
ever formed: ``log det Σ⁻¹ᐟ² = Σ log diag(P)``.

Shapes by type (K components, D features):

=========  ====================  ===========================
type       covariances           precision Cholesky factors
=========  ====================  ===========================
full       [K, D, D]             [K, D, D] (upper triangular)
tied       [D, D]                [D, D]
diag       [K, D]                [K, D]   (1 / σ)
spherical  [K]                   [K]      (1 / σ)
=========  ====================  ===========================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import per_type as t
from .per_type import LOG_2PI, FloatArray

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
__all__ = ["COVARIANCE_TYPES", "KERNELS", "LOG_2PI", "CovarianceKernels", "FloatArray",
           "covariance_shape", "kernels_for", "n_free_parameters"]


@dataclass(frozen=True)
class CovarianceKernels:
    """Everything that differs between covariance types; nothing outside this table branches
    on the type.

    Shapes: K components, D features, ``C`` the type's covariance shape (:attr:`shape`).
    """

    precision_cholesky: Callable[[FloatArray], FloatArray]  # C -> C
    log_det: Callable[[FloatArray, int], FloatArray]  # (factors, D) -> [K] or scalar
    mahalanobis: Callable[[FloatArray, FloatArray, FloatArray], FloatArray]  # -> [n, K]
    moments: Callable[[FloatArray, FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
    estimate: Callable[[FloatArray, FloatArray, float], FloatArray]  # scatter, N_k, reg -> C
    full_second_moment: bool  # statistics keep Σγxxᵀ [K, D, D] (else its diagonal [K, D])
    shape: Callable[[int, int], tuple[int, ...]]  # (K, D) -> C
    n_parameters: Callable[[int, int], int]  # free covariance parameters for (K, D)
    dense: Callable[[FloatArray, int, int], FloatArray]  # (C, K, D) -> [K, D, D]
    from_variances: Callable[[FloatArray, int], FloatArray]  # ([D], K) -> diagonal C
    rescaled: Callable[[FloatArray, FloatArray], FloatArray]  # (C, scale [D]) -> C'
    principal_axis: Callable[[FloatArray, int, int], tuple[FloatArray, float]]  # C, j, D
    precisions: Callable[[FloatArray, int, int], FloatArray]  # factors -> Λ or diag(Λ)
    rows: Callable[[FloatArray, int], FloatArray]  # (C, K) -> [K, width]
    from_rows: Callable[[FloatArray, int, int], FloatArray]  # ([K, width], K, D) -> C
    shared: bool = False  # one covariance for all components (tied)


KERNELS: dict[str, CovarianceKernels] = {
    "full": CovarianceKernels(
        precision_cholesky=t.precision_cholesky_full, log_det=t.log_det_full,
        mahalanobis=t.mahalanobis_full, moments=t.moments_full, estimate=t.estimate_full,
        full_second_moment=True, shape=t.shape_full,
        n_parameters=lambda k, d: k * d * (d + 1) // 2, dense=t.dense_full,
        from_variances=t.from_variances_full, rescaled=t.rescaled_full,
        principal_axis=t.principal_axis_full, precisions=t.precisions_full,
        rows=t.rows_full, from_rows=t.from_rows_full,
    ),
    "tied": CovarianceKernels(
        precision_cholesky=t.precision_cholesky_tied, log_det=t.log_det_tied,
        mahalanobis=t.mahalanobis_tied, moments=t.moments_full, estimate=t.estimate_tied,
        full_second_moment=True, shape=t.shape_tied,
        n_parameters=lambda k, d: d * (d + 1) // 2, dense=t.dense_tied,
        from_variances=t.from_variances_tied, rescaled=t.rescaled_tied,
        principal_axis=t.principal_axis_tied, precisions=t.precisions_tied,
        rows=t.rows_tied, from_rows=t.from_rows_tied, shared=True,
    ),
    "diag": CovarianceKernels(
        precision_cholesky=t.precision_cholesky_diag, log_det=t.log_det_diag,
        mahalanobis=t.mahalanobis_diag, moments=t.moments_diag, estimate=t.estimate_diag,
        full_second_moment=False, shape=t.shape_diag,
        n_parameters=lambda k, d: k * d, dense=t.dense_diag,
        from_variances=t.from_variances_diag, rescaled=t.rescaled_diag,
        principal_axis=t.principal_axis_diag, precisions=t.precisions_diag,
        rows=t.rows_diag, from_rows=t.from_rows_diag,
    ),
    "spherical": CovarianceKernels(
        precision_cholesky=t.precision_cholesky_spherical, log_det=t.log_det_spherical,
        mahalanobis=t.mahalanobis_spherical, moments=t.moments_diag,
        estimate=t.estimate_spherical,
        full_second_moment=False, shape=t.shape_spherical,
        n_parameters=lambda k, d: k, dense=t.dense_spherical,
        from_variances=t.from_variances_spherical, rescaled=t.rescaled_spherical,
        principal_axis=t.principal_axis_spherical, precisions=t.precisions_spherical,
        rows=t.rows_spherical, from_rows=t.from_rows_spherical,
    ),
}


def kernels_for(covariance_type: str) -> CovarianceKernels:
    """Return the kernel table row for ``covariance_type``, or raise a helpful ValueError."""
    try:
        return KERNELS[covariance_type]
    except KeyError:
        raise ValueError(
            f"covarianceType must be one of {', '.join(COVARIANCE_TYPES)}; "
            f"got {covariance_type!r}"
        ) from None


def covariance_shape(covariance_type: str, n_components: int, n_features: int) -> tuple[int, ...]:
    """Expected shape of the covariance array for a covariance type."""
    return kernels_for(covariance_type).shape(n_components, n_features)


def n_free_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Number of free parameters of a mixture: weights, means and covariances (as
    scikit-learn counts them for BIC/AIC)."""
    cov = kernels_for(covariance_type).n_parameters(n_components, n_features)
    return cov + n_components * n_features + n_components - 1
