"""Rows with missing features (NaN): the marginal E-step and the conditional statistics.

A row x with observed features o and missing features m has, under component k, the
marginal density N(x_o | μ_k,o, Σ_k,oo); its responsibilities come from those densities and
its log-likelihood is log Σ_k π_k N(x_o | μ_k,o, Σ_k,oo) (the observed-data likelihood).
Its contribution to component k's sufficient statistics is their conditional expectation
given x_o:

- E[x_m | x_o, k] = μ_k,m + Σ_k,mo Σ_k,oo⁻¹ (x_o − μ_k,o) fills the missing entries (the
  completed row x̂_k), giving Σγ and Σγ(x̂_k − s_k) and the outer products of x̂_k − s_k;
- the conditional covariance Σ_k,mm − Σ_k,mo Σ_k,oo⁻¹ Σ_k,om, times Σγ, is added to the
  m × m block of the second moments (diag, spherical: its diagonal,
  :meth:`~.covariance.CovarianceType.second_of_dense`).

These are added to the same sums complete rows give, so the M-step is unchanged. Rows are
grouped by missingness pattern; each pattern takes one Cholesky factor of Σ_k,oo per
component (one for a shared covariance).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from .covariance import FloatArray
from .exact import log_sum_exp
from .flush import exp_flushed_in_place
from .linalg import LOG_2PI
from .parameters import GaussianParameters

BoolArray = NDArray[np.bool_]


def incomplete_rows(x: FloatArray) -> BoolArray | None:
    """Which rows of ``x`` [n, D] hold a NaN; None when none does.

    One summation decides the common case (a sum without NaN has no NaN among its terms);
    only a NaN sum (also from ``inf − inf`` of huge values) looks at the rows.
    """
    if x.size == 0 or not np.isnan(np.sum(x)):
        return None
    mask = np.isnan(x).any(axis=1)
    return mask if mask.any() else None


def missing_patterns(x: FloatArray) -> Iterator[tuple[BoolArray, NDArray[np.intp]]]:
    """The distinct missingness patterns of ``x`` [n, D] and the rows of each.

    Yields
    ------
    observed : ndarray of shape (D,), bool
        The features observed in these rows.
    rows : ndarray of shape (r,)
        Their indices in ``x``, increasing.
    """
    missing = np.isnan(x)
    if x.shape[1] < 63:  # each pattern as the bits of one integer: a fast sort
        codes = missing @ (np.int64(1) << np.arange(x.shape[1], dtype=np.int64))
    else:
        codes = np.unique(missing, axis=0, return_inverse=True)[1].reshape(-1)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.diff(codes[order], prepend=-1))
    for start, stop in zip(starts, [*starts[1:], len(order)]):
        rows = order[start:stop]
        yield ~missing[rows[0]], rows


class PatternEStep(NamedTuple):
    """The E-step of rows sharing one missingness pattern, under one mixture.

    Attributes
    ----------
    log_likelihood : ndarray of shape (r,)
        log Σ_k π_k N(x_o | μ_k,o, Σ_k,oo).
    resp : ndarray of shape (r, K)
        Responsibilities from the marginal densities.
    conditional_means : ndarray of shape (K, r, |m|)
        E[x_m | x_o, k].
    conditional_covariances : ndarray of shape (K, |m|, |m|)
        Σ_k,mm − Σ_k,mo Σ_k,oo⁻¹ Σ_k,om.
    """

    log_likelihood: FloatArray
    resp: FloatArray
    conditional_means: FloatArray
    conditional_covariances: FloatArray


def pattern_e_step(x: FloatArray, observed: BoolArray, params: GaussianParameters
                   ) -> PatternEStep:
    """Marginal E-step of rows ``x`` [r, D] (NaN where missing) all observing ``observed``.

    ``x`` and ``params`` are in the same coordinates. A component of zero weight gets
    responsibility 0.
    """
    if params.has_noise:
        raise ValueError("rows with missing features cannot be scored or fitted with a noise "
                         "component")
    n_components, n_features = params.means.shape
    missing = ~observed
    # All components at once: [K, |o|, |o|] factors, [K, |o|, r] whitened rows.
    dense = params.covariance.dense(params.covariances, n_components, n_features)
    lower = np.linalg.cholesky(dense[:, observed][:, :, observed])
    # L_k⁻¹ once (as the precision-Cholesky factors are), then GEMMs: B_k = L_k⁻¹ Σ_k,om and
    # z = L_k⁻¹ (x_o − μ_k,o), so Σ_mo Σ_oo⁻¹ (x_o − μ_o) = B_kᵀ z, Σ_mo Σ_oo⁻¹ Σ_om = B_kᵀ B_k.
    inverse = np.linalg.solve(lower, np.broadcast_to(np.eye(lower.shape[1]), lower.shape))
    coupling = inverse @ dense[:, observed][:, :, missing]
    log_det = 2.0 * np.log(np.diagonal(lower, axis1=1, axis2=2)).sum(axis=1)
    whitened = inverse @ x[:, observed].T  # [K, |o|, r], minus L_k⁻¹ μ_k,o below
    whitened -= inverse @ params.means[:, observed, None]
    log_density = -0.5 * (int(observed.sum()) * LOG_2PI + log_det[:, None]
                          + np.einsum("kor,kor->kr", whitened, whitened))
    means = params.means[:, None, missing] + whitened.transpose(0, 2, 1) @ coupling
    covariances = (dense[:, missing][:, :, missing]
                   - coupling.transpose(0, 2, 1) @ coupling)
    weighted = log_density.T + params.log_weights
    log_likelihood = log_sum_exp(weighted)
    resp = weighted - log_likelihood[:, None]
    exp_flushed_in_place(resp)
    return PatternEStep(log_likelihood, resp, means, covariances)


def marginal_e_step(x: FloatArray, params: GaussianParameters
                    ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Log-likelihood, responsibilities and conditional-mean completion of rows with NaN.

    Parameters
    ----------
    x : ndarray of shape (n, D)
        Rows (NaN where missing), in the coordinates of ``params``; every row observes at
        least one feature.
    params : GaussianParameters

    Returns
    -------
    log_likelihood : ndarray of shape (n,)
    resp : ndarray of shape (n, K)
    imputed : ndarray of shape (n, D)
        ``x`` with each missing entry replaced by E[x_m | x_o] = Σ_k γ_k E[x_m | x_o, k].
    """
    n = x.shape[0]
    log_likelihood = np.empty(n)
    resp = np.empty((n, params.n_components))
    imputed = np.array(x, dtype=np.float64)
    for observed, rows in missing_patterns(x):
        step = pattern_e_step(x[rows], observed, params)
        log_likelihood[rows], resp[rows] = step.log_likelihood, step.resp
        filled = np.einsum("rk,krm->rm", step.resp, step.conditional_means)
        imputed[np.ix_(rows, ~observed)] = filled
    return log_likelihood, resp, imputed


class MarginalSums(NamedTuple):
    """One mixture's sums over rows with missing features (shapes as
    :class:`~.statistics.SufficientStatistics`)."""

    resp_sum: FloatArray
    first: FloatArray
    second: FloatArray
    log_likelihood: float
    assigned: NDArray[np.int64] | None
    entropy: float | None


def marginal_sums(x: FloatArray, weights: FloatArray | None, params: GaussianParameters,
                  count_assignments: bool) -> MarginalSums:
    """Σwγ, Σwγ(x̂ − μ_k), the second moments about μ_k (conditional covariance included) and
    Σw log p(x_o) of rows ``x`` [n, D] with NaN, centred like ``params``, whose means are
    the shift the sums are taken about."""
    covariance = params.covariance
    n_components, n_features = params.means.shape
    resp_sum = np.zeros(n_components)
    first = np.zeros((n_components, n_features))
    dense_second = np.zeros((n_components, n_features, n_features))
    log_likelihood = 0.0
    assigned = np.zeros(n_components, dtype=np.int64) if count_assignments else None
    entropy = 0.0 if count_assignments else None
    for observed, rows in missing_patterns(x):
        step = pattern_e_step(x[rows], observed, params)
        w = None if weights is None else weights[rows]
        resp = step.resp if w is None else step.resp * w[:, None]
        log_likelihood += float(step.log_likelihood.sum() if w is None
                                else w @ step.log_likelihood)
        if assigned is not None and entropy is not None:
            assigned += np.bincount(np.argmax(step.resp, axis=1), minlength=n_components)
            logs = np.zeros_like(step.resp)
            np.log(step.resp, out=logs, where=step.resp > 0)
            row_entropy = -(logs * step.resp).sum(axis=1)
            entropy += float(row_entropy.sum() if w is None else w @ row_entropy)
        # The completed rows minus each mean, [K, r, D]; their moments in one batched GEMM.
        completed = np.empty((n_components, rows.shape[0], n_features))
        completed[:, :, observed] = x[rows][:, observed][None] - params.means[:, None, observed]
        completed[:, :, ~observed] = step.conditional_means - params.means[:, None, ~observed]
        weighted = completed * resp.T[:, :, None]
        first += weighted.sum(axis=1)
        dense_second += weighted.transpose(0, 2, 1) @ completed
        block = np.ix_(np.arange(n_components), ~observed, ~observed)
        dense_second[block] += resp.sum(axis=0)[:, None, None] * step.conditional_covariances
        resp_sum += resp.sum(axis=0)
    return MarginalSums(resp_sum, first, covariance.second_of_dense(dense_second),
                        log_likelihood, assigned, entropy)
