"""E-step: log densities, log-sum-exp and responsibilities, all in log space."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .covariance import LOG_2PI, FloatArray, kernels_for
from .flush import exp_flushed_in_place
from .packed import (
    density_weights,
    is_exact_enough,
    packed_chunks,
    packed_log_responsibilities,
)
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
    kernels = kernels_for(params.covariance_type)
    n_features = params.n_features
    mahalanobis = kernels.mahalanobis(x, params.means, params.precisions_cholesky)
    log_det = kernels.log_det(params.precisions_cholesky, n_features)
    return -0.5 * (n_features * LOG_2PI + mahalanobis) + log_det


def weighted_log_density(x: FloatArray, params: GaussianParameters) -> FloatArray:
    """log π_k + log N(x_n | μ_k, Σ_k), shape (n, K); -inf where π_k = 0."""
    return log_gaussian_density(x, params) + params.log_weights


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
        log Σ_k π_k N(x_n | μ_k, Σ_k).
    log_resp : ndarray of shape (n, K)
        log γ_nk; each row's exponentials sum to 1.
    """
    weighted = weighted_log_density(x, params)
    log_likelihood = log_sum_exp(weighted)
    return log_likelihood, weighted - log_likelihood[:, None]


def score_rows(x: FloatArray, params: GaussianParameters
               ) -> tuple[FloatArray, FloatArray, NDArray[np.intp]]:
    """Log-likelihood, responsibilities and most likely component of every row.

    Rows are centred at the mixture's mean Σ π_k μ_k so that the packed two-GEMM path
    (:mod:`.packed`) can be used whenever it is exact enough; otherwise the exact kernels.

    Parameters
    ----------
    x : ndarray of shape (n, D)
    params : GaussianParameters

    Returns
    -------
    log_likelihood : ndarray of shape (n,)
    resp : ndarray of shape (n, K)
        Responsibilities; each row sums to 1.
    best : ndarray of shape (n,)
        argmax_k of the responsibilities.
    """
    center = params.weights @ params.means
    centred = params.shifted(-center)
    if not is_exact_enough(centred):
        log_likelihood, log_resp = log_responsibilities(x, params)
        best = np.argmax(log_resp, axis=1)
        exp_flushed_in_place(log_resp)
        return log_likelihood, log_resp, best
    n = x.shape[0]
    resp = np.empty((n, params.n_components))
    log_likelihood = np.empty(n)
    best = np.empty(n, dtype=np.intp)
    density = density_weights(centred)
    log_weights = params.log_weights
    for rows, phi in packed_chunks(x, params.covariance_type, center):
        chunk_resp, log_likelihood[rows], best[rows] = packed_log_responsibilities(
            phi, density, log_weights)
        resp[rows] = chunk_resp.T
    return log_likelihood, resp, best
