"""What the report draws, computed from a fitted mixture: principal axes, projected ellipses,
marginal densities. Pure numpy, so that it is tested without matplotlib or Spark."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels import GaussianParameters
from ..kernels.covariance import FloatArray


def dense_covariances(parameters: GaussianParameters) -> FloatArray:
    """Every component's covariance as a full matrix, shape (K, D, D)."""
    k, d = parameters.n_components, parameters.n_features
    return parameters.covariance.dense(parameters.covariances, k, d)


def mixture_covariance(parameters: GaussianParameters) -> FloatArray:
    """The mixture's own covariance, Σ_k π_k (Σ_k + μ_k μ_kᵀ) − μ μᵀ with μ = Σ_k π_k μ_k,
    shape (D, D): the covariance of the data the model describes."""
    weights, means = parameters.weights, parameters.means
    mean = weights @ means
    within = np.einsum("k,kij->ij", weights, dense_covariances(parameters))
    between = (means - mean).T @ ((means - mean) * weights[:, None])
    return within + between


@dataclass(frozen=True)
class PrincipalPlane:
    """The first two principal axes of the mixture, and how much variance they carry.

    Attributes
    ----------
    center : ndarray of shape (D,)
        The mixture's mean.
    axes : ndarray of shape (2, D)
        Orthonormal rows, the first the direction of most variance (one axis, padded with
        zeros, when D = 1).
    explained : ndarray of shape (2,)
        Share of the total variance along each axis.
    """

    center: FloatArray
    axes: FloatArray
    explained: FloatArray

    def project(self, x: FloatArray) -> FloatArray:
        """Rows (n, D) in plane coordinates, shape (n, 2)."""
        return (np.asarray(x, dtype=np.float64) - self.center) @ self.axes.T


def principal_plane(parameters: GaussianParameters) -> PrincipalPlane:
    """The plane of the two largest eigenvectors of :func:`mixture_covariance`."""
    covariance = mixture_covariance(parameters)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:2]
    axes = vectors[:, order].T
    # A fixed sign (largest entry positive) so that the picture does not flip between runs.
    axes = axes * np.where(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)] < 0,
                           -1.0, 1.0)[:, None]
    explained = np.clip(values[order], 0.0, None) / max(float(np.trace(covariance)), 1e-300)
    if len(axes) == 1:  # one feature: the second axis carries nothing
        axes = np.vstack([axes, np.zeros_like(axes)])
        explained = np.append(explained, 0.0)
    return PrincipalPlane(parameters.weights @ parameters.means, axes, explained)


def ellipse(mean: FloatArray, covariance: FloatArray, radius: float,
            points: int = 100) -> FloatArray:
    """The curve {mean + radius · L u : |u| = 1} with L Lᵀ = covariance (2 × 2): the
    ``radius``-σ contour of a 2-D Gaussian, shape (points, 2)."""
    values, vectors = np.linalg.eigh(covariance)
    angles = np.linspace(0.0, 2.0 * np.pi, points)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return mean + radius * (circle * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def projected_components(parameters: GaussianParameters, plane: PrincipalPlane
                         ) -> tuple[FloatArray, FloatArray]:
    """Each component's mean (K, 2) and covariance (K, 2, 2) in the plane: the exact
    distribution of the projected rows of that component."""
    means = plane.project(parameters.means)
    covariances = np.einsum("ai,kij,bj->kab", plane.axes, dense_covariances(parameters),
                            plane.axes)
    return means, covariances


def marginal_densities(parameters: GaussianParameters, feature: int, grid: FloatArray
                       ) -> FloatArray:
    """Each weighted component's density of feature ``feature`` on ``grid``:
    π_k N(x | μ_kj, Σ_k,jj), shape (K, len(grid)); their sum is the mixture's marginal."""
    variances = dense_covariances(parameters)[:, feature, feature]
    means = parameters.means[:, feature]
    z = (np.asarray(grid)[None, :] - means[:, None]) ** 2 / variances[:, None]
    return (parameters.weights[:, None] * np.exp(-0.5 * z)
            / np.sqrt(2.0 * np.pi * variances)[:, None])
