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

These are added to the same sums complete rows give, so the M-step is unchanged.

All of it comes from the precision Λ_k = Σ_k⁻¹ split into its o and m blocks, so that no
pattern needs a factor of Σ_k,oo, only of the small Λ_k,mm. With x̄ the row with 0 in its
missing entries and g = Λ_k (x̄ − μ_k):

- E[x_m | x_o, k] = μ_k,m − Λ_k,mm⁻¹ Λ_k,mo (x_o − μ_k,o) = −Λ_k,mm⁻¹ g_m;
- the conditional covariance Σ_k,mm − Σ_k,mo Σ_k,oo⁻¹ Σ_k,om is Λ_k,mm⁻¹ (Schur complement);
- log det Σ_k,oo = log det Σ_k + log det Λ_k,mm;
- (x_o − μ_k,o)ᵀ Σ_k,oo⁻¹ (x_o − μ_k,o) = dᵀ Λ_k d = dᵀ g for the completed row's deviation
  d = x̂_k − μ_k, since (Λ_k d)_m = 0.

Rows are grouped by their number of missing features: a group's rows go through each array
operation together, each row taking its pattern's Λ_k,mm⁻¹ (one batched Cholesky of the
group's Λ_k,mm over patterns and components).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from .covariance import FloatArray
from .flush import exp_flushed_in_place
from .linalg import LOG_2PI
from .parameters import GaussianParameters

BoolArray = NDArray[np.bool_]

_CHUNK_ROWS = 1024  # rows of a group at a time: their [K, rows, D] arrays stay in cache


def incomplete_rows(x: FloatArray) -> BoolArray | None:
    """Which rows of ``x`` [n, D] hold a NaN; None when none does.

    One summation decides the common case (a sum without NaN has no NaN among its terms);
    only a NaN sum (also from ``inf − inf`` of huge values) looks at the rows: first at each
    row's sum (one GEMV), then at the elements of the rows whose sum is NaN.
    """
    if x.size == 0 or not np.isnan(np.sum(x)):
        return None
    mask = np.isnan(x @ np.ones(x.shape[1]))
    suspects = np.flatnonzero(mask)
    mask[suspects] = np.isnan(np.take(x, suspects, axis=0)) @ np.ones(x.shape[1]) > 0
    return mask if mask.any() else None


class MissingGroup(NamedTuple):
    """Rows missing the same number j of features, ordered by missingness pattern.

    Attributes
    ----------
    rows : ndarray of shape (r,)
        Their indices in the rows grouped.
    missing : ndarray of shape (r, j)
        Each row's missing features, increasing.
    pattern : ndarray of shape (r,)
        Each row's pattern: an index into ``patterns``, non-decreasing.
    patterns : ndarray of shape (P, j)
        The group's distinct sets of missing features, increasing.
    starts : ndarray of shape (P,)
        Where each pattern's rows begin.
    """

    rows: NDArray[np.intp]
    missing: NDArray[np.intp]
    pattern: NDArray[np.intp]
    patterns: NDArray[np.intp]
    starts: NDArray[np.intp]


def missing_groups(x: FloatArray) -> list[MissingGroup]:
    """The rows of ``x`` [n, D] holding NaN, grouped by their number of missing features
    (increasing) and ordered by pattern within each group; complete rows are in none."""
    missing = np.isnan(x)
    if x.shape[1] < 56:  # each pattern as the bits of one integer: a fast sort
        codes = missing @ (np.int64(1) << np.arange(x.shape[1], dtype=np.int64))
        counts = np.bitwise_count(codes).astype(np.int64)
        order = np.argsort(counts << x.shape[1] | codes)  # by count, then pattern
    else:
        codes = np.unique(missing, axis=0, return_inverse=True)[1].reshape(-1)
        counts = missing.sum(axis=1)
        order = np.lexsort((codes, counts))
    bounds = np.flatnonzero(np.diff(counts[order], prepend=-1, append=-1))
    groups = []
    for start, stop in itertools.pairwise(bounds):
        rows = order[start:stop]
        if counts[rows[0]] == 0:
            continue
        new = np.diff(codes[rows], prepend=-1) != 0
        starts = np.flatnonzero(new)
        patterns = np.nonzero(missing[rows[starts]])[1].reshape(len(starts), -1)
        pattern = np.cumsum(new) - 1
        groups.append(MissingGroup(rows, patterns[pattern], pattern, patterns, starts))
    return groups


class BlockLayout(NamedTuple):
    """Where a block's rows with NaN are.

    Attributes
    ----------
    complete, incomplete : ndarray of shape (n_c,), (n_i,)
        The indices of the complete rows and of those holding NaN.
    groups : list of MissingGroup
        :func:`missing_groups` of the rows ``incomplete`` (indices into them).
    """

    complete: NDArray[np.intp]
    incomplete: NDArray[np.intp]
    groups: list[MissingGroup]


# Layouts of read-only blocks (stored partitions, read again every pass by resident tasks),
# by id, each with a weak reference that drops it when its block goes.
_LAYOUTS: dict[int, tuple[weakref.ref, BlockLayout | None]] = {}


def block_layout(x: FloatArray) -> BlockLayout | None:
    """The :class:`BlockLayout` of ``x`` [n, D]; None when no row holds NaN.

    A read-only ``x`` is taken to keep its values: its layout is kept while it lives and
    found again without looking at the rows.
    """
    cached = _LAYOUTS.get(id(x))
    if cached is not None and cached[0]() is x:
        return cached[1]
    mask = incomplete_rows(x)
    layout = None
    if mask is not None:
        incomplete = np.flatnonzero(mask)
        layout = BlockLayout(np.flatnonzero(~mask), incomplete,
                             missing_groups(np.take(x, incomplete, axis=0)))
    if not x.flags.writeable:
        key = id(x)
        _LAYOUTS[key] = (weakref.ref(x, lambda _, key=key: _LAYOUTS.pop(key, None)), layout)
    return layout


class _Precisions(NamedTuple):
    # Λ_k [K, D, D], log det Σ_k [K], log π_k [K] and μ_k [K, D] of one mixture.
    precisions: FloatArray
    log_det: FloatArray
    log_weights: FloatArray
    means: FloatArray

    @classmethod
    def of(cls, params: GaussianParameters) -> _Precisions:
        if params.has_noise:
            raise ValueError("rows with missing features cannot be scored or fitted with a "
                             "noise component")
        covariance = params.covariance
        n_components, n_features = params.means.shape
        p = params.precisions_cholesky
        precisions = covariance.precisions(p, n_components, n_features)
        if precisions.ndim == 2:  # diag, spherical: the diagonals
            diagonals = precisions
            precisions = np.zeros((n_components, n_features, n_features))
            index = np.arange(n_features)
            precisions[:, index, index] = diagonals
        log_det = np.broadcast_to(-2.0 * covariance.log_det(p, n_features), (n_components,))
        return cls(np.ascontiguousarray(precisions), log_det, params.log_weights, params.means)


class _PatternTables(NamedTuple):
    # One group's per-pattern quantities (P patterns of j missing features).
    conditional: FloatArray  # [K, P, j, j]: Λ_k,mm⁻¹, the conditional covariances
    by_slot: FloatArray  # [j, j, K, P]: the same, contiguous per pair of slots
    log_det: FloatArray  # [K, P]: log det Σ_k,oo


def _pattern_tables(patterns: NDArray[np.intp], mixture: _Precisions) -> _PatternTables:
    blocks = mixture.precisions[:, patterns[:, :, None], patterns[:, None, :]]  # Λ_mm
    lower = np.linalg.cholesky(blocks)
    inverse = np.linalg.solve(lower, np.broadcast_to(np.eye(patterns.shape[1]), lower.shape))
    conditional = inverse.swapaxes(2, 3) @ inverse  # Λ_mm⁻¹ = L⁻ᵀ L⁻¹
    log_det_mm = 2.0 * np.log(np.diagonal(lower, axis1=2, axis2=3)).sum(axis=2)
    return _PatternTables(conditional, np.ascontiguousarray(conditional.transpose(2, 3, 0, 1)),
                          mixture.log_det[:, None] + log_det_mm)


class _RowsEStep(NamedTuple):
    # The marginal E-step of r rows missing j features each.
    log_likelihood: FloatArray  # [r]
    resp: FloatArray  # [r, K] (a transposed view of [K, r])
    deviations: FloatArray  # [K, D, r]: the completed rows x̂_k minus μ_k, as columns
    imputed: FloatArray  # [j, K, r]: E[x_m | x_o, k]


def _rows_e_step(columns: FloatArray, missing: NDArray[np.intp], pattern: NDArray[np.intp],
                 tables: _PatternTables, mixture: _Precisions) -> _RowsEStep:
    # Rows as the columns of ``columns`` [D, r] (NaN where missing), their missing features
    # [r, j] and patterns [r]. Rows run along the last axis throughout: every elementwise
    # operation then has a long inner loop.
    (n_features, n_rows), n_missing = columns.shape, missing.shape[1]
    n_components = mixture.means.shape[0]
    # Each row's missing entries in the columns [D, r] flattened, slot-major: [j * r], and
    # in the [K, D, r] arrays flattened: [K * j * r].
    cells = (missing.T * n_rows + np.arange(n_rows)).ravel()
    cells_k = (np.arange(n_components)[:, None] * (n_features * n_rows) + cells).ravel()
    means_missing = np.take(mixture.means, missing.T, axis=1).reshape(-1)  # [K * j * r]
    deviations = columns[None] - mixture.means[:, :, None]  # [K, D, r]
    flat = deviations.reshape(-1)
    flat[cells_k] = -means_missing  # x̄ − μ_k, x̄ the row with 0 where missing
    g = mixture.precisions @ deviations  # Λ_k (x̄ − μ_k)
    g_missing = np.take(g.reshape(-1), cells_k)
    g_missing = g_missing.reshape(n_components, n_missing, n_rows).transpose(1, 0, 2)
    # Each row's pattern's Λ_mm⁻¹ [j, j, K, r] times its g_m [j, K, r]: E[x_m | x_o, k].
    by_row = np.take(tables.by_slot, pattern, axis=3)
    imputed = -(by_row * g_missing[None]).sum(axis=1)
    flat[cells_k] = imputed.transpose(1, 0, 2).reshape(-1) - means_missing  # x̂_k − μ_k
    g *= deviations
    log_density = g.sum(axis=1)  # the Mahalanobis distances dᵀ g, [K, r]
    log_density += np.take(tables.log_det, pattern, axis=1)
    log_density += (n_features - n_missing) * LOG_2PI
    log_density *= -0.5
    log_density += mixture.log_weights[:, None]
    # log Σ_k exp over the components (axis 0); the responsibilities are the exponentials
    # over their sum.
    top = log_density.max(axis=0)
    top[~np.isfinite(top)] = 0.0
    log_density -= top
    exp_flushed_in_place(log_density)  # each row's largest term is 1
    total = log_density.sum(axis=0)
    with np.errstate(divide="ignore"):
        log_likelihood = np.log(total) + top
    log_density /= total
    return _RowsEStep(log_likelihood, log_density.T, deviations, imputed)


def _chunks(x: FloatArray, group: MissingGroup
            ) -> Iterator[tuple[slice, FloatArray, NDArray[np.intp], NDArray[np.intp]]]:
    # A group's rows a cache-sized chunk at a time: where, the rows as columns [D, r], their
    # missing features and their patterns.
    columns = np.ascontiguousarray(np.take(x, group.rows, axis=0).T)
    for start in range(0, len(group.rows), _CHUNK_ROWS):
        part = slice(start, start + _CHUNK_ROWS)
        yield part, columns[:, part], group.missing[part], group.pattern[part]


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
    mixture = _Precisions.of(params)
    n = x.shape[0]
    log_likelihood = np.empty(n)
    resp = np.empty((n, params.n_components))
    imputed = np.array(x, dtype=np.float64)
    for group in missing_groups(x):
        tables = _pattern_tables(group.patterns, mixture)
        for part, rows, missing, pattern in _chunks(x, group):
            step = _rows_e_step(rows, missing, pattern, tables, mixture)
            indices = group.rows[part]
            log_likelihood[indices], resp[indices] = step.log_likelihood, step.resp
            filled = np.einsum("rk,akr->ra", step.resp, step.imputed)
            imputed[indices[:, None], missing] = filled
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
                  count_assignments: bool, groups: list[MissingGroup] | None = None
                  ) -> MarginalSums:
    """Σwγ, Σwγ(x̂ − μ_k), the second moments about μ_k (conditional covariance included) and
    Σw log p(x_o) of rows ``x`` [n, D] with NaN, centred like ``params``, whose means are
    the shift the sums are taken about; ``groups`` are ``missing_groups(x)`` when known."""
    mixture = _Precisions.of(params)
    n_components, n_features = params.means.shape
    resp_sum = np.zeros(n_components)
    first = np.zeros((n_components, n_features))
    dense_second = np.zeros((n_components, n_features, n_features))
    log_likelihood = 0.0
    assigned = np.zeros(n_components, dtype=np.int64) if count_assignments else None
    entropy = 0.0 if count_assignments else None
    for group in missing_groups(x) if groups is None else groups:
        tables = _pattern_tables(group.patterns, mixture)
        group_resp = np.empty((len(group.rows), n_components))
        for part, rows, missing, pattern in _chunks(x, group):
            step = _rows_e_step(rows, missing, pattern, tables, mixture)
            w = None if weights is None else weights[group.rows[part]]
            resp = step.resp if w is None else step.resp * w[:, None]
            group_resp[part] = resp
            log_likelihood += float(step.log_likelihood.sum() if w is None
                                    else w @ step.log_likelihood)
            if assigned is not None and entropy is not None:
                assigned += np.bincount(np.argmax(step.resp, axis=1), minlength=n_components)
                logs = np.zeros_like(step.resp)
                np.log(step.resp, out=logs, where=step.resp > 0)
                row_entropy = -(logs * step.resp).sum(axis=1)
                entropy += float(row_entropy.sum() if w is None else w @ row_entropy)
            # The completed rows' moments, one batched GEMM over the components.
            weighted = step.deviations * resp.T[:, None, :]
            first += weighted.sum(axis=2)
            dense_second += weighted @ step.deviations.transpose(0, 2, 1)
        resp_sum += group_resp.sum(axis=0)
        # Each pattern's Σwγ times its conditional covariances, into the m × m blocks.
        pattern_sums = np.add.reduceat(group_resp, group.starts, axis=0).T  # [K, P]
        patterns = group.patterns
        cells = (np.arange(n_components)[:, None, None, None] * n_features
                 + patterns[None, :, :, None]) * n_features + patterns[None, :, None, :]
        values = pattern_sums[:, :, None, None] * tables.conditional
        dense_second += np.bincount(cells.ravel(), values.ravel(),
                                    minlength=dense_second.size).reshape(dense_second.shape)
    return MarginalSums(resp_sum, first, params.covariance.second_of_dense(dense_second),
                        log_likelihood, assigned, entropy)
