"""Variational Bayes for Gaussian mixtures (Bishop 2006 §10.2; Blei & Jordan 2006 for the
truncated Dirichlet process), with scikit-learn's ``BayesianGaussianMixture`` conventions.

The variational E-step needs no kernel of its own: with sklearn's normalised covariances
C_k = (ν_k W_k)⁻¹,

    log ρ_nk = log N(x_n | m_k, C_k) + c_k,
    c_k = E[log π_k] − ½ D log ν_k + ½ (D log 2 + Σ_{i<D} ψ((ν_k − i)/2) − D/β_k),

so one statistics pass of the Gaussian mixture with weights softmax(c) and covariances C_k
(:meth:`VariationalParameters.mixture`) returns N_k, Σ r (x − m_k), Σ r (x − m_k)(x − m_k)ᵀ
and Σ_n log Σ_k ρ_nk − N lse(c). The M-step (:func:`variational_m_step`) and the lower bound
(:func:`lower_bound`) use those sums only: Σ_nk r_nk log ρ_nk is linear in them. Every
per-type difference goes through the covariance classes (``estimate``, ``centred_scatter``,
``log_det``, ``precisions``), a tied covariance through ``shared``. Coordinates are those of
the statistics (centred at the data mean in a fit); the prior's mean is in the same ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .covariance import covariance_of
from .linalg import LOG_2PI, FloatArray
from .parameters import GaussianParameters
from .statistics import SufficientStatistics

WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
_EPS10 = 10 * np.finfo(np.float64).eps  # added to every N_k, as scikit-learn does
# ψ(x) for x ≥ this from its asymptotic series: ln x − 1/(2x) − Σ B_2n / (2n x^2n)
_ASYMPTOTIC_FROM = 10.0
_SERIES = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)


def digamma(x: FloatArray | float) -> FloatArray:
    """ψ(x) = d/dx log Γ(x) for x > 0, elementwise (numpy only; ~1e-15 relative).

    Shifts x up by ψ(x) = ψ(x + 1) − 1/x until x ≥ 10, then sums the asymptotic series to
    the x⁻¹⁴ term (the next is below 5e-17 there).
    """
    x = np.array(x, dtype=np.float64)
    if np.any(~(x > 0)):
        raise ValueError("digamma is implemented for positive arguments only")
    shift = np.zeros_like(x)
    while np.any(small := x < _ASYMPTOTIC_FROM):
        shift = np.where(small, shift - 1.0 / np.where(small, x, 1.0), shift)
        x = np.where(small, x + 1.0, x)
    inverse_square = 1.0 / (x * x)
    series = np.zeros_like(x)
    for coefficient in reversed(_SERIES):
        series = (series + coefficient) * inverse_square
    return np.log(x) - 0.5 / x - series + shift


def gammaln(x: FloatArray | float) -> FloatArray:
    """log Γ(x) for x > 0, elementwise (the standard library's ``lgamma``)."""
    return np.vectorize(math.lgamma, otypes=[np.float64])(np.asarray(x, dtype=np.float64))


def betaln(a: FloatArray, b: FloatArray) -> FloatArray:
    """log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b), elementwise."""
    return gammaln(a) + gammaln(b) - gammaln(np.asarray(a) + np.asarray(b))


@dataclass(frozen=True)
class VariationalPrior:
    """The priors of a Bayesian mixture (scikit-learn's ``*_prior_`` after defaults).

    Attributes
    ----------
    weight_type : str
        ``dirichlet_process`` (stick-breaking Beta(1, α₀) per component) or
        ``dirichlet_distribution`` (Dir(α₀, …, α₀)).
    weight_concentration : float
        α₀ > 0.
    mean_precision : float
        β₀ > 0.
    mean : ndarray of shape (D,)
        m₀, in the coordinates of the statistics.
    dof : float
        ν₀ > D − 1.
    covariance : ndarray
        Ψ₀ in the type's prior shape: [D, D] (full, tied), [D] (diag), [] (spherical).
    """

    weight_type: str
    weight_concentration: float
    mean_precision: float
    mean: FloatArray
    dof: float
    covariance: FloatArray

    def shifted(self, offset: FloatArray) -> VariationalPrior:
        """The same prior for means moved by ``offset`` [D]."""
        return VariationalPrior(self.weight_type, self.weight_concentration,
                                self.mean_precision, self.mean + offset, self.dof,
                                self.covariance)


@dataclass(frozen=True)
class VariationalParameters:
    """The variational posterior of a K-component mixture (scikit-learn's fitted arrays).

    Attributes
    ----------
    covariance_type, weight_type : str
    weight_concentration : ndarray of shape (2, K) or (K,)
        Beta parameters (a_k, b_k) per stick (``dirichlet_process``) or the Dirichlet's α_k.
    mean_precision : ndarray of shape (K,)
        β_k.
    means : ndarray of shape (K, D)
        m_k.
    dof : ndarray of shape (K,)
        ν_k (``tied``: one value, repeated).
    covariances : ndarray
        (ν_k W_k)⁻¹ in the type's shape (scikit-learn's ``covariances_``).
    precisions_cholesky : ndarray
        Their precision-Cholesky factors.
    """

    covariance_type: str
    weight_type: str
    weight_concentration: FloatArray
    mean_precision: FloatArray
    means: FloatArray
    dof: FloatArray
    covariances: FloatArray
    precisions_cholesky: FloatArray

    @property
    def weights(self) -> FloatArray:
        """The expected weights, normalised (scikit-learn's ``weights_``), shape (K,)."""
        if self.weight_type == "dirichlet_process":
            a, b = self.weight_concentration
            stick = b / (a + b)
            weights = a / (a + b) * np.hstack((1.0, np.cumprod(stick[:-1])))
        else:
            weights = self.weight_concentration
        return weights / np.sum(weights)

    def expected_log_weights(self) -> FloatArray:
        """E[log π_k], shape (K,)."""
        if self.weight_type == "dirichlet_process":
            a, b = self.weight_concentration
            digamma_sum = digamma(a + b)
            return (digamma(a) - digamma_sum
                    + np.hstack((0.0, np.cumsum(digamma(b) - digamma_sum)[:-1])))
        return digamma(self.weight_concentration) - digamma(np.sum(self.weight_concentration))

    def log_rho_offsets(self) -> FloatArray:
        """c_k with log ρ_nk = log N(x_n | m_k, C_k) + c_k, shape (K,)."""
        d = self.means.shape[1]
        log_lambda = d * math.log(2.0) + np.sum(
            digamma(0.5 * (self.dof[None, :] - np.arange(d)[:, None])), axis=0)
        return (self.expected_log_weights() - 0.5 * d * np.log(self.dof)
                + 0.5 * (log_lambda - d / self.mean_precision))

    def mixture(self) -> tuple[GaussianParameters, float]:
        """The Gaussian mixture whose E-step is this posterior's, and lse(c): weights
        softmax(c), means m_k, covariances C_k; log ρ_nk = its log π_k N_k(x_n) + lse(c)."""
        offsets = self.log_rho_offsets()
        top = float(np.max(offsets))
        lse = top + math.log(float(np.sum(np.exp(offsets - top))))
        weights = np.exp(offsets - lse)
        return GaussianParameters(self.covariance_type, weights / weights.sum(), self.means,
                                  self.covariances, self.precisions_cholesky), lse

    def shifted(self, offset: FloatArray) -> VariationalParameters:
        """The same posterior with every mean moved by ``offset`` [D]."""
        return VariationalParameters(
            self.covariance_type, self.weight_type, self.weight_concentration,
            self.mean_precision, self.means + offset, self.dof, self.covariances,
            self.precisions_cholesky)


def variational_m_step(stats: SufficientStatistics, covariance_type: str,
                       prior: VariationalPrior, reg_covar: float) -> VariationalParameters:
    """The variational posterior from the responsibilities' sums (scikit-learn's ``_m_step``).

    With N_k (+ 10 ε), x̄_k, W_k the scatter about x̄_k, β_k = β₀ + N_k and
    B_k = W_k + β₀N_k/β_k (x̄_k − m₀)(x̄_k − m₀)ᵀ: m_k = (β₀ m₀ + N_k x̄_k)/β_k, and
    C_k = (Ψ₀ + B_k + N_k reg I)/(ν₀ + N_k) with ν_k = ν₀ + N_k (``tied``: one
    C = (KΨ₀ + Σ_k B_k + N reg I)/(Kν₀ + N), ν = ν₀ + N/K); ``diag`` and ``spherical`` take
    the diagonal of the same (``spherical``: its mean over the features).

    Parameters
    ----------
    stats : SufficientStatistics
        Merged over all rows, for the mixture of the current posterior (or any start).
    covariance_type : str
    prior : VariationalPrior
        In the coordinates of ``stats``.
    reg_covar : float
    """
    covariance = covariance_of(covariance_type)
    nk = stats.resp_sum + _EPS10
    k = nk.shape[0]
    delta = stats.first / nk[:, None]
    scatter = covariance.centred_scatter(stats.second, nk, delta)
    centres = stats.shift + delta
    mean_precision = prior.mean_precision + nk
    gap = centres - prior.mean
    pulled = covariance.centred_scatter(scatter, -prior.mean_precision * nk / mean_precision,
                                        gap)
    if covariance.shared:
        n_total = float(nk.sum())
        dof = np.full(k, prior.dof + n_total / k)
        covariances = covariance.estimate(
            np.concatenate([pulled, (k * prior.covariance)[None]]),
            np.append(nk, k * prior.dof), reg_covar * n_total / (n_total + k * prior.dof))
    else:
        dof = prior.dof + nk
        covariances = covariance.estimate(pulled + prior.covariance, dof,
                                          (reg_covar * nk / dof)[:, None])
    means = (prior.mean_precision * prior.mean + nk[:, None] * centres) / mean_precision[:, None]
    if prior.weight_type == "dirichlet_process":
        concentration = np.vstack((1.0 + nk, prior.weight_concentration
                                   + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0.0))))
    else:
        concentration = prior.weight_concentration + nk
    return VariationalParameters(covariance_type, prior.weight_type, concentration,
                                 mean_precision, means, dof, covariances,
                                 covariance.precision_cholesky(covariances))


def _log_wishart_norm(dof: FloatArray, log_det_cholesky: FloatArray, d: int) -> FloatArray:
    # scikit-learn's ``_log_wishart_norm`` (its log π term left out), per component
    return -(dof * log_det_cholesky + dof * d * 0.5 * math.log(2.0)
             + np.sum(gammaln(0.5 * (dof[None, :] - np.arange(d)[:, None])), axis=0))


def lower_bound(stats: SufficientStatistics, used: GaussianParameters, lse: float,
                posterior: VariationalParameters) -> float:
    """scikit-learn's lower bound after an iteration (``_compute_lower_bound``).

    −Σ_n Σ_k r_nk log r_nk of the E-step's responsibilities, less the Wishart and weight
    normalisers and ½D Σ_k log β_k of the posterior after the M-step; the constants
    scikit-learn leaves out are left out. Σ r log r = Σ_nk r_nk log ρ_nk − Σ_n log Σ_k ρ_nk,
    the first term from the pass's sums (about the E-step's means), the second its
    log-likelihood plus N lse(c).

    Parameters
    ----------
    stats : SufficientStatistics
        The pass of ``used``.
    used : GaussianParameters
        The E-step's mixture and ``lse`` (:meth:`VariationalParameters.mixture`).
    posterior : VariationalParameters
        After the M-step from ``stats``.
    """
    covariance = used.covariance
    k, d = used.means.shape
    offsets = np.log(used.weights, out=np.full(k, -np.inf), where=used.weights > 0) + lse
    precisions = covariance.precisions(used.precisions_cholesky, k, d)
    quadratic = np.sum(precisions * stats.second, axis=tuple(range(1, stats.second.ndim)))
    log_det = np.broadcast_to(covariance.log_det(used.precisions_cholesky, d), (k,))
    held = stats.resp_sum > 0  # a component of weight 0 (log π = −∞) has no rows
    r_log_rho = float(np.sum(stats.resp_sum[held] * (offsets[held] - 0.5 * d * LOG_2PI
                                                     + log_det[held]) - 0.5 * quadratic[held]))
    r_log_r = r_log_rho - (stats.log_likelihood + stats.weight_sum * lse)
    new = posterior.covariance_type
    log_det_new = (np.broadcast_to(covariance_of(new).log_det(posterior.precisions_cholesky, d),
                                   (k,)) - 0.5 * d * np.log(posterior.dof))
    log_wishart = float(np.sum(_log_wishart_norm(posterior.dof, log_det_new, d)))
    if posterior.weight_type == "dirichlet_process":
        log_norm_weight = -float(np.sum(betaln(*posterior.weight_concentration)))
    else:
        alpha = posterior.weight_concentration
        log_norm_weight = float(gammaln(np.sum(alpha)) - np.sum(gammaln(alpha)))
    return (-r_log_r - log_wishart - log_norm_weight
            - 0.5 * d * float(np.sum(np.log(posterior.mean_precision))))
