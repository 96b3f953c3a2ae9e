"""The conjugate prior of MAP-EM (Fraley & Raftery 2007, mclust's ``priorControl``) and the
log densities its covariance types share.

Given Σ_k, each mean is μ_k ~ N(μ_P, Σ_k / κ); the covariances are inverse-Wishart
IW(ν, Λ) (``full``: one per component, ``tied``: one shared), or inverse-gamma IG(ν/2, λ/2)
per variance (``diag``: λ_j per feature, ``spherical``: one ς² per component); the mixing
weights have none (flat). The posterior modes per type are methods of the covariance
classes (:meth:`~.covariance.CovarianceType.posterior_mode`); docs/bayesian.md derives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .linalg import LOG_2PI, FloatArray


@dataclass(frozen=True)
class ConjugatePrior:
    """Hyperparameters of the normal-inverse-Wishart (or -gamma) prior of one mixture.

    Attributes
    ----------
    mean : ndarray of shape (D,)
        μ_P, in the coordinates of the means it is a prior for.
    shrinkage : float
        κ > 0: the prior on a mean weighs as much as κ rows.
    dof : float
        ν: degrees of freedom (> D − 1 for ``full``/``tied``, > 0 otherwise).
    scale : ndarray
        Λ in the covariance type's prior shape (:meth:`~.covariance.CovarianceType.prior_scale`):
        [D, D] (full, tied), [D] (diag), [] (spherical).
    """

    mean: FloatArray
    shrinkage: float
    dof: float
    scale: FloatArray

    def shifted(self, offset: FloatArray) -> ConjugatePrior:
        """The same prior for means moved by ``offset`` (shape (D,))."""
        return ConjugatePrior(self.mean + offset, self.shrinkage, self.dof, self.scale)


def log_multivariate_gamma(a: float, d: int) -> float:
    """log Γ_d(a) = d(d−1)/4 log π + Σ_{j=1..d} log Γ(a + (1 − j)/2)."""
    return d * (d - 1) / 4.0 * math.log(math.pi) + sum(
        math.lgamma(a + (1 - j) / 2.0) for j in range(1, d + 1))


def log_mean_prior(log_det_p: FloatArray, distance: FloatArray, shrinkage: float,
                   d: int) -> float:
    """Σ_k log N(μ_k; μ_P, Σ_k/κ) from log det P_k [K] and (μ_k−μ_P)ᵀΣ_k⁻¹(μ_k−μ_P) [K]."""
    return float(np.sum(0.5 * d * (math.log(shrinkage) - LOG_2PI) + log_det_p
                        - 0.5 * shrinkage * distance))


def log_inverse_wishart(log_det_p: FloatArray, trace: FloatArray, prior: ConjugatePrior,
                        d: int) -> float:
    """Σ log IW(Σ; ν, Λ) = ν/2 log|Λ| − νd/2 log 2 − log Γ_d(ν/2) − (ν+d+1)/2 log|Σ|
    − ½ tr(ΛΣ⁻¹), from log det P = −½ log|Σ| and tr(ΛΣ⁻¹), each [K] or a scalar."""
    nu = prior.dof
    constant = (0.5 * nu * np.linalg.slogdet(prior.scale)[1] - 0.5 * nu * d * math.log(2.0)
                - log_multivariate_gamma(0.5 * nu, d))
    return float(np.sum(constant + (nu + d + 1) * log_det_p - 0.5 * trace))


def log_inverse_gamma(p: FloatArray, prior: ConjugatePrior) -> float:
    """Σ log IG(σ²; ν/2, λ/2) = ν/2 log(λ/2) − log Γ(ν/2) − (ν/2 + 1) log σ² − λ/(2σ²) over
    every variance, from p = 1/σ (λ broadcast: per feature for diag, one for spherical)."""
    nu = prior.dof
    values = (0.5 * nu * np.log(0.5 * prior.scale) - math.lgamma(0.5 * nu)
              + (nu + 2.0) * np.log(p) - 0.5 * prior.scale * p * p)
    return float(np.sum(np.broadcast_to(values, p.shape)))
