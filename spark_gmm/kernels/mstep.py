"""M-step: new mixture parameters from merged sufficient statistics."""

from __future__ import annotations

import logging

import numpy as np

from .covariance import FloatArray, covariance_of
from .parameters import GaussianParameters
from .prior import ConjugatePrior, log_mean_prior
from .statistics import SufficientStatistics

logger = logging.getLogger(__name__)

# A component whose effective row count N_k falls below this share of the total weight has
# collapsed: its mean and covariance are no longer determined by the data.
COLLAPSE_FRACTION = 1e-10


def reseed_collapsed(
    weights: FloatArray,
    means: FloatArray,
    covariances: FloatArray,
    covariance_type: str,
    collapsed: list[int],
) -> None:
    """Re-seed collapsed components in place by splitting the heaviest component.

    Rule: for each collapsed component j, take the component d with the largest weight,
    give j and d half of d's weight each, d's covariance, and means μ_d ± ½·√λ·v where
    (λ, v) is the largest eigenpair of d's covariance (for spherical, λ = σ² and v is the
    first coordinate axis). The split is deterministic, needs no extra pass over the data,
    and lets the next E-step pull both halves towards the data.
    """
    n_features = means.shape[1]
    covariance = covariance_of(covariance_type)
    pending = set(collapsed)
    for j in collapsed:
        candidates = weights.copy()
        candidates[list(pending)] = -1.0
        donor = int(np.argmax(candidates))
        pending.discard(j)
        direction, variance = covariance.principal_axis(covariances, donor, n_features)
        offset = 0.5 * np.sqrt(max(variance, 0.0)) * direction
        weights[j] = weights[donor] = 0.5 * weights[donor]
        means[j] = means[donor] + offset
        means[donor] = means[donor] - offset
        if not covariance.shared:
            covariances[j] = covariances[donor]
        logger.warning(
            "component %d collapsed (effective weight below %.0e of the data); re-seeded by "
            "splitting component %d along its principal axis", j, COLLAPSE_FRACTION, donor,
        )


def m_step(
    stats: SufficientStatistics, covariance_type: str, reg_covar: float,
    prior: ConjugatePrior | None = None, noise_log_volume: float | None = None,
) -> tuple[GaussianParameters, list[int]]:
    """New parameters from statistics computed with the previous parameters.

    π_k = N_k / N, μ_k = shift_k + Σ w γ (x - shift_k) / N_k and Σ_k from the second
    moments about the shift, moved to μ_k exactly (no E[xxᵀ] − μμᵀ on raw moments), plus
    ``reg_covar`` on the diagonal.

    With a ``prior`` (MAP-EM), the means and covariances are the posterior mode instead:
    μ_k = (N_k x̄_k + κ μ_P) / (N_k + κ) and the type's
    :meth:`~.covariance.CovarianceType.posterior_mode` of
    W_k + κN_k/(κ+N_k) (x̄_k − μ_P)(x̄_k − μ_P)ᵀ, plus ``reg_covar`` on the diagonal; the
    weights keep the update above. A component of no weight keeps the prior's mode and is
    not re-seeded (re-seeding would lower the log posterior).

    With a noise component (statistics with ``noise_resp_sum``), π_0 = N_0 / N and
    π_k = N_k / N, N = N_0 + Σ_k N_k; its volume stays ``noise_log_volume``.

    Parameters
    ----------
    stats : SufficientStatistics
        Merged over all rows.
    covariance_type : str
    reg_covar : float
        Non-negative value added to the covariance diagonal.
    prior : ConjugatePrior or None
        In the coordinates of ``stats`` (the means its shift is in).
    noise_log_volume : float or None
        log V of the noise component; required when ``stats`` have one.

    Returns
    -------
    params : GaussianParameters
    collapsed : list of int
        Components that were re-seeded (see :func:`reseed_collapsed`).
    """
    covariance = covariance_of(covariance_type)
    nk = stats.resp_sum
    if not stats.weight_sum > 0:
        raise ValueError("the data have zero total weight; give some rows a positive weight")
    collapsed = [
        int(k) for k in np.flatnonzero(~(nk > COLLAPSE_FRACTION * stats.weight_sum))
    ]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = stats.first / nk[:, None]
        scatter = covariance.centred_scatter(stats.second, nk, delta)
        if collapsed:
            delta[collapsed] = 0.0
            scatter[collapsed] = 0.0
        if prior is None:
            covariances = covariance.estimate(scatter, nk, reg_covar)
    noise = stats.noise_resp_sum
    if noise is None:
        weights = nk / nk.sum()
    else:
        if noise_log_volume is None:
            raise ValueError("statistics with a noise component need its log volume")
        total = nk.sum() + noise
        weights, noise_weight = nk / total, noise / total
    means = stats.shift + delta
    if prior is not None:
        # x̄_k − μ_P, and the prior's pull on the scatter: W_k + c_k g_k g_kᵀ, as
        # centred_scatter with weights −c_k.
        gap = means - prior.mean
        pull = prior.shrinkage * nk / (prior.shrinkage + nk)
        covariances = covariance.posterior_mode(
            covariance.centred_scatter(scatter, -pull, gap), nk, prior, reg_covar)
        means = means - (prior.shrinkage / (prior.shrinkage + nk))[:, None] * gap
        collapsed = []
    if collapsed:
        weights = weights.copy()
        reseed_collapsed(weights, means, covariances, covariance_type, collapsed)
    if noise is None:
        params = GaussianParameters.from_covariances(weights, means, covariances,
                                                     covariance_type)
    else:
        params = GaussianParameters.from_covariances(weights, means, covariances,
                                                     covariance_type, noise_weight,
                                                     noise_log_volume)
    return params, collapsed


def log_prior(params: GaussianParameters, prior: ConjugatePrior) -> float:
    """log p(μ, Σ) of a mixture under ``prior`` (same coordinates): the means' normal
    densities N(μ_k; μ_P, Σ_k/κ) and the covariances' inverse-Wishart or inverse-gamma
    densities (:meth:`~.covariance.CovarianceType.log_covariance_prior`), normalised; the
    weights' flat prior adds nothing."""
    covariance, p = params.covariance, params.precisions_cholesky
    k, d = params.means.shape
    distance = covariance.mahalanobis(prior.mean[None, :], params.means, p)[0]
    log_det = np.broadcast_to(covariance.log_det(p, d), (k,))
    return (log_mean_prior(log_det, distance, prior.shrinkage, d)
            + covariance.log_covariance_prior(p, prior, d))
