"""The parameters of a Gaussian mixture: a small immutable value type."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .covariance import CovarianceType, FloatArray, covariance_of


@dataclass(frozen=True)
class GaussianParameters:
    """Weights, means and covariances of a K-component mixture in D dimensions, and
    optionally a uniform noise component (Banfield & Raftery 1993).

    Attributes
    ----------
    covariance_type : str
        One of ``full``, ``tied``, ``diag``, ``spherical``.
    weights : ndarray of shape (K,)
        The Gaussians' mixing proportions π_k, non-negative, summing to 1 − ``noise_weight``.
    means : ndarray of shape (K, D)
    covariances : ndarray
        Shape depends on the type (see :mod:`spark_gmm.kernels.covariance`).
    precisions_cholesky : ndarray
        Same shape as ``covariances``; derived from them at construction.
    noise_weight : float
        π_0, the weight of the noise component (0 without one).
    noise_log_volume : float or None
        log V of the noise component, whose density is 1/V everywhere the rows are; None:
        no noise component.
    """

    covariance_type: str
    weights: FloatArray
    means: FloatArray
    covariances: FloatArray
    precisions_cholesky: FloatArray
    noise_weight: float = 0.0
    noise_log_volume: float | None = None

    @classmethod
    def from_covariances(
        cls,
        weights: FloatArray,
        means: FloatArray,
        covariances: FloatArray,
        covariance_type: str,
        noise_weight: float = 0.0,
        noise_log_volume: float | None = None,
    ) -> GaussianParameters:
        """Validate shapes and derive the precision-Cholesky factors.

        With ``noise_log_volume`` (log V) the mixture has a noise component of weight
        ``noise_weight``: the Gaussians' ``weights`` and it sum to 1.

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
        if noise_log_volume is not None:
            return _with_noise(cls(covariance_type, weights, means, covariances,
                                   covariance.precision_cholesky(covariances)),
                               float(noise_weight), float(noise_log_volume))
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

    @property
    def has_noise(self) -> bool:
        """Whether the mixture has a uniform noise component."""
        return self.noise_log_volume is not None

    @property
    def log_weights_with_noise(self) -> FloatArray:
        """log π_k of the Gaussians, then log π_0 when there is a noise component:
        shape (K,) or (K + 1,); -inf for components of zero weight."""
        if self.noise_log_volume is None:
            return self.log_weights
        with np.errstate(divide="ignore"):
            return np.append(self.log_weights, np.log(self.noise_weight))

    @property
    def gaussian_center(self) -> FloatArray:
        """Σ π_k μ_k / Σ π_k, shape (D,): the Gaussians' mean."""
        if self.noise_log_volume is None:
            return self.weights @ self.means
        return self.weights @ self.means / self.weights.sum()

    def with_noise(self, weight: float, log_volume: float) -> GaussianParameters:
        """This mixture with a noise component of weight ``weight`` and log volume
        ``log_volume``: the Gaussians share 1 − ``weight`` in proportion to their weights."""
        gaussians = self.weights * ((1.0 - weight) / self.weights.sum())
        return dataclasses.replace(self, weights=gaussians, noise_weight=float(weight),
                                   noise_log_volume=float(log_volume))

    def without_noise(self) -> GaussianParameters:
        """The Gaussians alone, their weights as they are (not renormalised)."""
        return dataclasses.replace(self, noise_weight=0.0, noise_log_volume=None)

    def components(self, indices: np.ndarray) -> GaussianParameters:
        """The components ``indices`` alone (their weights as they are: not renormalised;
        no noise component)."""
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
        return dataclasses.replace(self, means=self.means + offset)


def _with_noise(params: GaussianParameters, noise_weight: float, log_volume: float
                ) -> GaussianParameters:
    # Validates the weights of a mixture with a noise component, normalised together.
    weights = params.weights
    if not np.isfinite(log_volume):
        raise ValueError(f"the noise component's log volume must be finite; got {log_volume}")
    total = weights.sum() + noise_weight
    if (np.any(weights < 0) or not 0.0 <= noise_weight <= 1.0
            or not np.isclose(total, 1.0, rtol=0, atol=1e-8)):
        raise ValueError("weights and the noise weight must be non-negative and sum to 1; "
                         f"got {weights.tolist()} and {noise_weight}")
    return dataclasses.replace(params, weights=weights / total,
                               noise_weight=noise_weight / total, noise_log_volume=log_volume)


def n_free_parameters(covariance_type: str, n_components: int, n_features: int,
                      noise: bool = False) -> int:
    """Free parameters of a mixture: weights, means and covariances (as scikit-learn counts
    them for BIC/AIC), plus the noise weight when there is a noise component (as mclust
    counts it; its volume is fixed, not estimated)."""
    cov = covariance_of(covariance_type).n_parameters(n_components, n_features)
    return cov + n_components * n_features + n_components - 1 + int(noise)
