"""E- and M-step as two large GEMMs over packed quadratic features.

A Gaussian log density is linear in the features φ(x) = [x_i x_j (i ≤ j), x, 1]:

    log N(x | μ, Σ) = -½ xᵀΛx + xᵀΛμ - ½ μᵀΛμ - ½ log det Σ - ½ D log 2π,   Λ = Σ⁻¹

so for a block of rows the K log densities are one GEMM ``W [K, M] @ Φ [M, n]`` and every
sufficient statistic (Σγ, Σγx, Σγxxᵀ) is one GEMM ``Γ [K, n] @ Φᵀ [n, M]``. For D = 10 this is
M = 66 values per row, read twice; the per-component projections and rank-n updates it
replaces have inner dimensions of D or outputs of D×D, which BLAS runs far below its peak.
Diagonal and spherical mixtures use φ(x) = [x², x, 1] (M = 2D + 1).

Features are laid out [M, n] (one contiguous row per feature) because building them is then
D vectorised products of whole rows rather than strided column writes (2x faster here).

Which products φ holds is the covariance type's packed-feature kind
(:attr:`~.covariance.CovarianceType.quadratic_features`).

Precision: the expansion subtracts terms of size r_k = (μ_k − 0)ᵀΛ_k(μ_k − 0) (the squared
Mahalanobis distance of the origin — the data mean, after centring — from component k) to
get results of size ~D. The rounding error is therefore ~ε·r_k relative: only components with
r_k ≤ :data:`MAX_ORIGIN_DISTANCE2`, where it is below ~2e-10, take this path; the others take
the exact centred kernels (:class:`~.split.SplitMixture` divides a mixture between the two).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from .chunks import rows_per_chunk
from .covariance import FloatArray, covariance_of
from .flush import exp_flushed_in_place
from .linalg import LOG_2PI
from .parameters import GaussianParameters

# ε · 1e6 ≈ 2e-10: the worst relative error the expansion may add to a covariance.
MAX_ORIGIN_DISTANCE2 = 1e6
_MAX_CHUNK_ROWS = 16384


def uses_quadratic_features(covariance_type: str) -> bool:
    """Whether the type needs all products x_i x_j (full, tied) or only squares."""
    return covariance_of(covariance_type).quadratic_features


def n_packed_features(covariance_type: str, n_features: int) -> int:
    """M, the number of packed features per row."""
    if uses_quadratic_features(covariance_type):
        return n_features * (n_features + 1) // 2 + n_features + 1
    return 2 * n_features + 1


def packed_chunk_rows(covariance_type: str, n_features: int) -> int:
    """Rows per chunk so that one chunk's features stay cache-sized."""
    return rows_per_chunk(n_packed_features(covariance_type, n_features), _MAX_CHUNK_ROWS)


_scratch = threading.local()


def feature_buffer(covariance_type: str, n_features: int) -> FloatArray:
    """A reusable (M, chunk rows) buffer for :func:`packed_features`, one per thread.

    A fresh multi-megabyte array per block costs a page fault per 4 kB on first touch;
    reusing one was 3x faster for 10,000-row scoring batches.
    """
    shape = (n_packed_features(covariance_type, n_features),
             packed_chunk_rows(covariance_type, n_features))
    buffer = getattr(_scratch, "features", None)
    if buffer is None or buffer.size < shape[0] * shape[1]:
        buffer = np.empty(shape[0] * shape[1])
        _scratch.features = buffer
    return buffer[: shape[0] * shape[1]].reshape(shape)


def packed_features(x: FloatArray, covariance_type: str, out: FloatArray | None = None
                    ) -> FloatArray:
    """φ(x) for every row, shape (M, n); ``out`` (M, ≥ n) is reused when given."""
    n, d = x.shape
    m = n_packed_features(covariance_type, d)
    phi = (np.empty((m, n)) if out is None else out)[:, :n]
    columns = np.ascontiguousarray(x.T)
    if uses_quadratic_features(covariance_type):
        offset = 0
        for i in range(d):
            np.multiply(columns[i:], columns[i], out=phi[offset : offset + d - i])
            offset += d - i
    else:
        offset = d
        np.multiply(columns, columns, out=phi[:d])
    phi[offset : offset + d] = columns
    phi[offset + d] = 1.0
    return phi


def packed_chunks(x: FloatArray, covariance_type: str, center: FloatArray | None
                  ) -> Iterator[tuple[slice, FloatArray]]:
    """Cache-sized chunks of ``x`` as (rows, φ(x[rows] − center)), φ of shape (M, chunk).

    φ lives in this thread's :func:`feature_buffer` and is overwritten by the next chunk.
    """
    step = packed_chunk_rows(covariance_type, x.shape[1])
    buffer = feature_buffer(covariance_type, x.shape[1])
    for start in range(0, x.shape[0], step):
        rows = slice(start, min(x.shape[0], start + step))
        phi = packed_features(x[rows] if center is None else x[rows] - center,
                              covariance_type, buffer)
        # No reference to the centred chunk may outlive this line: a live one shifted the
        # allocator into fresh pages for the caller's temporaries (scoring 0.12 -> 0.20 s).
        yield rows, phi


def density_weights(params: GaussianParameters) -> FloatArray:
    """W of shape (K, M) with ``W @ φ(x)`` = log N(x | μ_k, Σ_k) (mixing weights excluded)."""
    d, k = params.n_features, params.n_components
    means = params.means
    covariance = covariance_of(params.covariance_type)
    precision = covariance.precisions(params.precisions_cholesky, k, d)
    if covariance.quadratic_features:
        rows, cols = np.triu_indices(d)
        # x_i x_j appears once for i < j but stands for both (i, j) and (j, i).
        quadratic = -precision[:, rows, cols] * np.where(rows == cols, 0.5, 1.0)
        linear = np.einsum("kde,ke->kd", precision, means)
    else:
        quadratic = -0.5 * precision
        linear = precision * means
    log_det = covariance.log_det(params.precisions_cholesky, d)
    constant = -0.5 * np.einsum("kd,kd->k", linear, means) + log_det - 0.5 * d * LOG_2PI
    return np.concatenate([quadratic, linear, constant[:, None]], axis=1)


def origin_distance2(params: GaussianParameters) -> FloatArray:
    """r_k, the squared Mahalanobis distance of the origin from each component, shape (K,)."""
    covariance = covariance_of(params.covariance_type)
    origin = np.zeros((1, params.n_features))
    return covariance.mahalanobis(origin, params.means, params.precisions_cholesky)[0]


def normalised_responsibilities(
    scores: FloatArray, log_weights: FloatArray, find_best: bool
) -> tuple[FloatArray, FloatArray, NDArray[np.intp] | None]:
    """Responsibilities of a chunk from its component log densities, in place.

    Parameters
    ----------
    scores : ndarray of shape (K, n)
        log N(x_n | μ_k, Σ_k); overwritten.
    log_weights : ndarray of shape (K,), log π_k (may hold -inf)
    find_best : bool
        Whether to return the most likely component of each row (an argmax across K
        strided rows: ~15 % of the E-step, so EM iterations skip it).

    Returns
    -------
    resp : ndarray of shape (K, n)
        γ_kn (``scores`` itself), each column summing to 1.
    log_likelihood : ndarray of shape (n,)
        log Σ_k π_k N(x_n | μ_k, Σ_k).
    best : ndarray of shape (n,) or None
        argmax_k γ_kn, None unless ``find_best``.
    """
    scores += log_weights[:, None]
    best = np.argmax(scores, axis=0) if find_best else None
    row_max = scores.max(axis=0)
    scores -= row_max
    exp_flushed_in_place(scores, scores.shape[0])
    total = scores.sum(axis=0)
    scores /= total
    return scores, np.log(total) + row_max, best


class PackedSums:
    """``Γ Φᵀ`` (K, M) of a block of rows, added chunk by chunk.

    In later EM iterations most responsibilities are exact zeros (flushed, :mod:`.flush`):
    from a random-rows start at 200k × 50 × 16, 88 % of them from the fifth iteration, yet
    the dense GEMM multiplies every one of them into all M features. A chunk whose
    responsibilities are mostly zero is therefore set aside, and once the set-aside rows fill
    a window of :data:`_WINDOW_ROWS` (or the block ends) each component takes the weighted
    products of only its own rows: a gather of those rows and a SYRK, nnz_k × D²/2
    multiply-adds rather than n × M for every component. It is the same sum over the same
    nonzero terms, in another order. The window bounds the memory to K × 8,192 values per
    mixture (K × chunk rows where a chunk is longer) whatever the block's size. Diagonal and
    spherical features (M = 2D + 1) always take the GEMM.

    Parameters
    ----------
    n_components : int
    x : ndarray of shape (n, D)
        The block's rows; chunks are added in row order.
    center : ndarray of shape (D,) or None
        What the chunks' features were centred at.
    covariance_type : str
    components : ndarray of component indices or None
        The rows of the sums wanted (default: all); set-aside rows of the others are never
        gathered, and their sums are incomplete.
    """

    def __init__(self, n_components: int, x: FloatArray, center: FloatArray | None,
                 covariance_type: str, components: NDArray[np.intp] | None = None) -> None:
        self.sums = np.zeros((n_components, n_packed_features(covariance_type, x.shape[1])))
        self.quadratic = uses_quadratic_features(covariance_type)
        self.x, self.center = x, center
        self.components = np.arange(n_components) if components is None else components
        self.window: FloatArray | None = None  # (K, ≤ _WINDOW_ROWS) set-aside responsibilities
        self.window_rows: list[slice] = []     # the block rows each set-aside chunk came from
        self.window_used = 0

    def add(self, resp: FloatArray, phi: FloatArray, rows: slice) -> None:
        """Add a chunk: ``resp`` (K, n) (times any row weights), ``phi`` (M, n) its packed
        features, ``rows`` its rows in the block."""
        n_components, n = resp.shape
        m, d = phi.shape[0], self.x.shape[1]
        if (not self.quadratic or n == 0
                or np.count_nonzero(resp) * d * (d + 2) > _SPARSE_SHARE * n_components * n * m):
            self.sums += resp @ phi.T
            return
        if self.window is None or self.window.shape[1] < n:  # chunks exceed it at small D
            self._fold_window()
            self.window = np.empty((n_components, max(_WINDOW_ROWS, n)))
        if self.window_used + n > self.window.shape[1]:
            self._fold_window()
        self.window[:, self.window_used : self.window_used + n] = resp
        self.window_rows.append(rows)
        self.window_used += n

    def total(self) -> FloatArray:
        """The sums (K, M) once every chunk is added (complete in the rows of
        ``components``)."""
        self._fold_window()
        return self.sums

    def _fold_window(self) -> None:
        if not self.window_used:
            return
        assert self.window is not None
        d = self.x.shape[1]
        rows, cols = np.triu_indices(d)
        block_rows = np.concatenate([np.arange(r.start, r.stop) for r in self.window_rows])
        for k in self.components:
            resp = self.window[k, : self.window_used]
            kept = np.flatnonzero(resp)
            if kept.size == 0:
                continue
            gamma = resp[kept]
            centred = np.take(self.x, block_rows[kept], axis=0)
            if self.center is not None:
                centred -= self.center
            self.sums[k, rows.size : rows.size + d] += gamma @ centred
            self.sums[k, -1] += gamma.sum()
            # Yᵀ Y with Y = √γ x is one SYRK (half a GEMM's multiply-adds).
            centred *= np.sqrt(gamma)[:, None]
            self.sums[k, : rows.size] += (centred.T @ centred)[rows, cols]
        self.window_rows, self.window_used = [], 0


# A chunk is set aside when nnz × D(D + 2) is below this share of the GEMM's K × n × M. One
# core, a block of 100k × 50 × 16 after 5 and 10 EM iterations (set-aside rows folded once per
# block): 0.48 s against 0.56 and 0.50 against 0.69; at 500k × 10 × 8 no chunk qualifies (a
# share of 1.0 would set aside chunks there and doubled the pass: 0.29 s against 0.13).
_SPARSE_SHARE = 0.4
# Set-aside rows folded at a time: SYRKs over ~2,000 rows ran at 31 GFLOP/s, over 50,000 at
# 21 (one core, D = 50); at 8,192 rows and a sixteenth of them per component, about 500.
_WINDOW_ROWS = 8192


def unpack_moments(sums: FloatArray, shift: FloatArray, covariance_type: str
                   ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Turn ``Γ Φᵀ`` (K, M) into Σγ (K,), Σγ(x − s) (K, D) and the second moments about s.

    The second moments are (K, D, D) for full/tied and their diagonals (K, D) otherwise.
    """
    n_components, d = shift.shape
    resp_sum = sums[:, -1]
    raw_first = sums[:, -1 - d : -1]
    first = raw_first - resp_sum[:, None] * shift
    if uses_quadratic_features(covariance_type):
        raw_second = np.empty((n_components, d, d))
        rows, cols = np.triu_indices(d)
        raw_second[:, rows, cols] = sums[:, : rows.size]
        raw_second[:, cols, rows] = sums[:, : rows.size]
        cross = raw_first[:, :, None] * shift[:, None, :]
        second = (raw_second - cross - cross.transpose(0, 2, 1)
                  + resp_sum[:, None, None] * shift[:, :, None] * shift[:, None, :])
    else:
        second = sums[:, :d] - 2.0 * raw_first * shift + resp_sum[:, None] * shift * shift
    return resp_sum, first, second
