"""The parameters of a Gaussian mixture: a small immutable value type."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .covariance import CovarianceType, FloatArray, covariance_of


@dataclass(frozen=True)
class GaussianParameters:
    """Weights, means and covariances of a K-component mixture in D dimensions.

    Attributes
    ----------
    covariance_type : str
        One of ``full``, ``tied``, ``diag``, ``spherical``.
    weights : ndarray of shape (K,)
        Mixing proportions, non-negative, summing to 1.
    means : ndarray of shape (K, D)
    covariances : ndarray
        Shape depends on the type (see :mod:`spark_gmm.kernels.covariance`).
    precisions_cholesky : ndarray
        Same shape as ``covariances``; derived from them at construction.
    """

    covariance_type: str
    weights: FloatArray
    means: FloatArray
    covariances: FloatArray
    precisions_cholesky: FloatArray

    @classmethod
    def from_covariances(
        cls,
        weights: FloatArray,
        means: FloatArray,
        covariances: FloatArray,
        covariance_type: str,
    ) -> GaussianParameters:
        """Validate shapes and derive the precision-Cholesky factors.

        Raises
        ------
        ValueError
            Wrong shapes, non-finite values or weights that are not a distribution.
        CovarianceError
            A covariance is not positive definite.
        """
        covariance = covariance_of(covariance_type)
        weights = np.array(weights, dtype=np.float64)
        means = np.array(means, dtype=np.float64)
        covariances = np.array(covariances, dtype=np.float64)
        if weights.ndim != 1 or means.ndim != 2 or means.shape[0] != weights.shape[0]:
            raise ValueError(
                f"weights must have shape (K,) and means (K, D); got {weights.shape} and "
                f"{means.shape}"
            )
        n_components, n_features = means.shape
        expected = covariance.shape(n_components, n_features)
        if covariances.shape != expected:
            raise ValueError(
                f"covariances for covarianceType={covariance_type!r} with K={n_components}, "
                f"D={n_features} must have shape {expected}; got {covariances.shape}"
            )
        for name, array in (("weights", weights), ("means", means), ("covariances", covariances)):
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name} contain NaN or infinite values")
        if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-8):
            raise ValueError(f"weights must be non-negative and sum to 1; got {weights.tolist()}")
        weights = weights / weights.sum()
        return cls(
            covariance_type, weights, means, covariances,
            covariance.precision_cholesky(covariances)
        )

    @property
    def covariance(self) -> CovarianceType:
        """The operations of this mixture's covariance type."""
        return covariance_of(self.covariance_type)

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    @property
    def log_weights(self) -> FloatArray:
        """log π_k, shape (K,); -inf for components of zero weight."""
        with np.errstate(divide="ignore"):
            return np.log(self.weights)

    def components(self, indices: np.ndarray) -> GaussianParameters:
        """The components ``indices`` alone (their weights as they are: not renormalised)."""
        shared = self.covariance.shared
        return GaussianParameters(
            self.covariance_type,
            self.weights[indices],
            self.means[indices],
            self.covariances if shared else self.covariances[indices],
            self.precisions_cholesky if shared else self.precisions_cholesky[indices],
        )

    def shifted(self, offset: FloatArray) -> GaussianParameters:
        """The same mixture with every mean moved by ``offset`` (shape (D,))."""
        return GaussianParameters(
            self.covariance_type,
            self.weights,
            self.means + offset,
            self.covariances,
            self.precisions_cholesky,
        )


def n_free_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Free parameters of a mixture: weights, means and covariances (as scikit-learn counts
    them for BIC/AIC)."""
    cov = covariance_of(covariance_type).n_parameters(n_components, n_features)
    return cov + n_components * n_features + n_components - 1
