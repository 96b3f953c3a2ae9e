"""The E-step: responsibilities γ_nk and per-row log-likelihoods, the packed/exact choice hidden.

:func:`e_step` serves one block of rows and one mixture (scoring). :func:`e_step_routes`
serves several mixtures over the same rows (the statistics pass): it groups them by the route
their E-step takes, and each route yields the rows chunk by chunk with every mixture's
responsibilities of that chunk. Accumulating them into sufficient statistics is apart, in
:mod:`.statistics`.

The routes:

- **packed** (:class:`PackedRoute`): mixtures whose covariance types share a packed-feature
  kind share each chunk's features φ (:mod:`.packed`); the log densities are one GEMM. Each
  mixture's components too tight and far from the data mean for the expansion
  (:class:`~.split.SplitMixture`) take the exact kernel within the same chunk.
- **exact** (:class:`ExactRoute`): a mixture none of whose components the packed kernel may
  serve takes the exact centred kernel (:mod:`.exact`) alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from .chunks import rows_per_chunk
from .covariance import FloatArray
from .exact import log_responsibilities
from .flush import exp_flushed_in_place
from .kmeans import centre_scores, nearest_centre, nearest_one_hot
from .marginal import incomplete_rows, marginal_e_step
from .parameters import GaussianParameters
from .split import SplitMixture, split_chunks

_MAX_EXACT_CHUNK_ROWS = 8192


class Chunk(NamedTuple):
    """Some consecutive rows of a block, in the mixtures' (centred) coordinates.

    Attributes
    ----------
    rows : slice
        Which rows of the block.
    phi : ndarray of shape (M, n) or None
        Their packed features (packed route; overwritten by the next chunk), else None.
    centred : ndarray of shape (n, D)
        The rows themselves; empty (0, D) on the packed route when no component needs them.
    """

    rows: slice
    phi: FloatArray | None
    centred: FloatArray


class Responsibilities(NamedTuple):
    """One mixture's E-step on one chunk.

    Attributes
    ----------
    resp : ndarray of shape (K, n), or (K + 1, n) with a noise component (its row last)
        γ_kn, each column summing to 1 (one-hot for hard assignments, which ignore the
        noise component: K rows).
    log_likelihood : ndarray of shape (n,)
        log Σ_k π_k N(x_n | μ_k, Σ_k) (+ π_0 / V); zeros for hard assignments.
    best : ndarray of shape (n,) or None
        argmax_k γ_kn when asked for, else None.
    """

    resp: FloatArray
    log_likelihood: FloatArray
    best: NDArray[np.intp] | None


@dataclass(frozen=True)
class PackedRoute:
    """Mixtures sharing one packed feature matrix per chunk (one packed-feature kind)."""

    splits: list[SplitMixture]

    @property
    def mixtures(self) -> list[GaussianParameters]:
        return [s.params for s in self.splits]

    def chunks(self, x: FloatArray, center: FloatArray | None, find_best: bool,
               hard_assignment: bool) -> Iterator[tuple[Chunk, list[Responsibilities]]]:
        for rows, phi, centred in split_chunks(x, self.splits, center):
            yield Chunk(rows, phi, centred), [
                _packed_hard(phi, split.params.means, find_best) if hard_assignment
                else Responsibilities(*split.log_responsibilities(phi, centred, find_best))
                for split in self.splits]


@dataclass(frozen=True)
class ExactRoute:
    """One mixture on the exact centred kernel, in chunks whose (n, K·D) projection stays
    cache-sized."""

    params: GaussianParameters

    @property
    def mixtures(self) -> list[GaussianParameters]:
        return [self.params]

    def chunks(self, x: FloatArray, center: FloatArray | None, find_best: bool,
               hard_assignment: bool) -> Iterator[tuple[Chunk, list[Responsibilities]]]:
        params = self.params
        step = exact_chunk_rows(params.n_components, params.n_features)
        for start in range(0, x.shape[0], step):
            rows = slice(start, min(x.shape[0], start + step))
            centred = x[rows] if center is None else x[rows] - center
            if hard_assignment:
                nearest = nearest_centre(centred, params.means)
                resp = np.zeros((params.n_components, centred.shape[0]))
                resp[nearest, np.arange(centred.shape[0])] = 1.0
                result = Responsibilities(resp, np.zeros(centred.shape[0]),
                                          nearest if find_best else None)
            else:
                log_likelihood, log_resp = log_responsibilities(centred, params)
                exp_flushed_in_place(log_resp)
                result = Responsibilities(log_resp.T, log_likelihood,
                                          np.argmax(log_resp, axis=1) if find_best else None)
            yield Chunk(rows, None, centred), [result]


Route = PackedRoute | ExactRoute


def exact_chunk_rows(n_components: int, n_features: int) -> int:
    """Rows per chunk of the exact kernel, whose projection of a chunk on every component at
    once is (chunk, K·D) values."""
    return rows_per_chunk(n_components * n_features, _MAX_EXACT_CHUNK_ROWS)


def _packed_hard(phi: FloatArray, means: FloatArray, find_best: bool) -> Responsibilities:
    # Each row wholly to its nearest mean. φ's linear rows are the (centred) features, one
    # contiguous row per feature.
    resp = nearest_one_hot(centre_scores(means, phi[-1 - means.shape[1] : -1]))
    return Responsibilities(resp, np.zeros(phi.shape[1]),
                            np.argmax(resp, axis=0) if find_best else None)


def e_step_routes(models: Sequence[GaussianParameters], exact: bool = False
                  ) -> list[tuple[list[int], Route]]:
    """The routes that compute the E-step of ``models`` over shared rows.

    Parameters
    ----------
    models : sequence of GaussianParameters
        Mixtures in the coordinates the rows will be given in (centred at the data mean).
    exact : bool
        Every mixture on the exact kernel (the reference the packed route is tested against).

    Returns
    -------
    list of (indices into ``models``, route), every model in exactly one route.
    """
    splits = [None if exact else SplitMixture.of(m) for m in models]
    routes: list[tuple[list[int], Route]] = []
    for quadratic in (True, False):
        group = [i for i, s in enumerate(splits) if s is not None and s.packable
                 and models[i].covariance.quadratic_features == quadratic]
        if group:
            routes.append((group, PackedRoute([splits[i] for i in group])))  # type: ignore
    routes.extend(([i], ExactRoute(m)) for i, (m, s) in enumerate(zip(models, splits))
                  if s is None or not s.packable)
    return routes


def e_step(x: FloatArray, params: GaussianParameters, exact: bool = False
           ) -> tuple[FloatArray, FloatArray, NDArray[np.intp]]:
    """Log-likelihood, responsibilities and most likely component of every row.

    Rows are centred at the Gaussians' mean Σ π_k μ_k / Σ π_k; the packed two-GEMM kernel
    serves every component close enough to it, the exact kernel the rest. A noise component
    is the last column of the responsibilities, and its index K the most likely component
    of the rows it takes.

    Parameters
    ----------
    x : ndarray of shape (n, D)
    params : GaussianParameters
    exact : bool
        Take the exact kernel for every component.

    Rows holding NaN (missing features) take the marginal E-step of their observed
    features (:func:`~.marginal.marginal_e_step`).

    Returns
    -------
    log_likelihood : ndarray of shape (n,)
    resp : ndarray of shape (n, K), or (n, K + 1) with a noise component
        Responsibilities; each row sums to 1.
    best : ndarray of shape (n,)
        argmax_k of the responsibilities.
    """
    incomplete = incomplete_rows(x)
    if incomplete is not None:
        return _e_step_incomplete(x, params, incomplete, exact)
    center = params.gaussian_center
    [(_, route)] = e_step_routes([params.shifted(-center)], exact)
    n = x.shape[0]
    resp = np.empty((n, params.n_components + params.has_noise))
    log_likelihood = np.empty(n)
    best = np.empty(n, dtype=np.intp)
    for chunk, [result] in route.chunks(x, center, find_best=True, hard_assignment=False):
        resp[chunk.rows] = result.resp.T
        log_likelihood[chunk.rows] = result.log_likelihood
        best[chunk.rows] = result.best
    return log_likelihood, resp, best


def _e_step_incomplete(x: FloatArray, params: GaussianParameters, incomplete: NDArray[np.bool_],
                       exact: bool) -> tuple[FloatArray, FloatArray, NDArray[np.intp]]:
    # Complete rows as any others; rows with NaN from their observed features' marginals.
    log_likelihood = np.empty(x.shape[0])
    resp = np.empty((x.shape[0], params.n_components + params.has_noise))
    complete = ~incomplete
    log_likelihood[complete], resp[complete], _ = e_step(x[complete], params, exact)
    log_likelihood[incomplete], resp[incomplete], _ = marginal_e_step(x[incomplete], params)
    return log_likelihood, resp, np.argmax(resp, axis=1)
