"""The exact E-step: log densities, log-sum-exp and responsibilities from centred rows, all in
log space. :func:`~.estep.e_step` takes it for the components the packed kernel would not
serve precisely (:class:`~.split.SplitMixture`); the tests take it as the reference."""

from __future__ import annotations

import numpy as np

from .covariance import FloatArray, covariance_of
from .flush import exp_flushed_in_place
from .linalg import LOG_2PI
from .parameters import GaussianParameters


def log_gaussian_density(x: FloatArray, params: GaussianParameters) -> FloatArray:
    """log N(x_n | μ_k, Σ_k) for every row and component.

    Parameters
    ----------
    x : ndarray of shape (n, D)
    params : GaussianParameters

    Returns
    -------
    ndarray of shape (n, K)
    """
    covariance = covariance_of(params.covariance_type)
    n_features = params.n_features
    mahalanobis = covariance.mahalanobis(x, params.means, params.precisions_cholesky)
    log_det = covariance.log_det(params.precisions_cholesky, n_features)
    return -0.5 * (n_features * LOG_2PI + mahalanobis) + log_det


def weighted_log_density(x: FloatArray, params: GaussianParameters) -> FloatArray:
    """log π_k + log N(x_n | μ_k, Σ_k), shape (n, K); -inf where π_k = 0.

    With a noise component, a last column log π_0 − log V: shape (n, K + 1).
    """
    if params.noise_log_volume is None:
        return log_gaussian_density(x, params) + params.log_weights
    densities = np.empty((x.shape[0], params.n_components + 1))
    densities[:, :-1] = log_gaussian_density(x, params)
    densities[:, -1] = -params.noise_log_volume
    return densities + params.log_weights_with_noise


def log_sum_exp(values: FloatArray) -> FloatArray:
    """Row-wise log Σ_k exp(values[:, k]) without overflow or underflow.

    Rows whose entries are all -inf give -inf.
    """
    row_max = np.max(values, axis=1)
    safe_max = np.where(np.isfinite(row_max), row_max, 0.0)
    terms = values - safe_max[:, None]
    exp_flushed_in_place(terms)  # each row's largest term is 1: flushed ones change nothing
    with np.errstate(divide="ignore"):
        return np.log(np.sum(terms, axis=1)) + safe_max


def log_responsibilities(
    x: FloatArray, params: GaussianParameters
) -> tuple[FloatArray, FloatArray]:
    """Per-row log-likelihood and log responsibilities.

    Returns
    -------
    log_likelihood : ndarray of shape (n,)
        log Σ_k π_k N(x_n | μ_k, Σ_k) (+ π_0 / V with a noise component).
    log_resp : ndarray of shape (n, K), or (n, K + 1) with the noise component last
        log γ_nk; each row's exponentials sum to 1.
    """
    weighted = weighted_log_density(x, params)
    log_likelihood = log_sum_exp(weighted)
    return log_likelihood, weighted - log_likelihood[:, None]
