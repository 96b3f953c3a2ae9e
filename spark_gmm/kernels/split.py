"""Mixtures whose components divide between the packed kernel and the exact one.

The packed two-GEMM kernel (:mod:`.packed`) loses ~ε·r_k of precision on a component whose
squared Mahalanobis distance r_k from the origin (the data mean) is large: a tight component
far from the centre of the data. Such components appear in later EM iterations at D = 50
(r_k > 1e6 for one of 16 components from iteration 4 in the benchmark's hard start). Here
only they take the exact kernel (log densities and centred moments); the rest stay packed,
and the responsibilities are normalised over all of them together. Measured on one core,
100k rows: 0.46-0.55 s per later iteration, against 0.55-0.58 s with the whole mixture
exact and 0.40-0.47 s all packed (which would be imprecise for that component).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .covariance import FloatArray
from .exact import log_gaussian_density
from .packed import (
    MAX_ORIGIN_DISTANCE2,
    density_weights,
    n_packed_features,
    normalised_responsibilities,
    origin_distance2,
    packed_chunks,
)
from .parameters import GaussianParameters


@dataclass(frozen=True)
class SplitMixture:
    """A mixture with its components divided into ``near`` (packed) and ``far`` (exact).

    Attributes
    ----------
    params : GaussianParameters
        In coordinates centred at the packed features' centre.
    near, far : ndarray of component indices
    density : ndarray of shape (K, M)
        The packed log-density weights of the near components; zero rows for the far ones.
        The GEMMs keep all K rows: OpenBLAS ran 15 rows 25 % slower than 16 here.
    far_params : GaussianParameters or None
        The far components alone.
    """

    params: GaussianParameters
    near: NDArray[np.intp]
    far: NDArray[np.intp]
    density: FloatArray
    far_params: GaussianParameters | None

    @classmethod
    def of(cls, params: GaussianParameters) -> SplitMixture:
        close = origin_distance2(params) <= MAX_ORIGIN_DISTANCE2
        near, far = np.flatnonzero(close), np.flatnonzero(~close)
        density = np.zeros((params.n_components, n_packed_features(
            params.covariance_type, params.n_features)))
        if near.size:
            density[near] = density_weights(params.components(near))
        return cls(params, near, far, density, params.components(far) if far.size else None)

    @property
    def packable(self) -> bool:
        """Whether any component takes the packed kernel (else the exact kernel does all)."""
        return self.near.size > 0

    def log_responsibilities(self, phi: FloatArray, centred: FloatArray, find_best: bool
                             ) -> tuple[FloatArray, FloatArray, NDArray[np.intp] | None]:
        """Responsibilities (K, n), log-likelihood (n,) and argmax (or None) of a chunk;
        with a noise component its responsibilities are a last row, (K + 1, n).

        ``phi`` (M, n) are the chunk's packed features and ``centred`` (n, D) its rows in the
        same coordinates, used only by the far components.
        """
        params = self.params
        if params.noise_log_volume is None:
            scores = self.density @ phi
        else:  # the noise component's log density −log V, last
            scores = np.empty((params.n_components + 1, phi.shape[1]))
            np.matmul(self.density, phi, out=scores[:-1])
            scores[-1] = -params.noise_log_volume
        if self.far_params is not None:
            scores[self.far] = log_gaussian_density(centred, self.far_params).T
        return normalised_responsibilities(scores, params.log_weights_with_noise, find_best)


def split_chunks(x: FloatArray, split: SplitMixture | list[SplitMixture],
                 center: FloatArray | None
                 ) -> Iterator[tuple[slice, FloatArray, FloatArray]]:
    """:func:`~.packed.packed_chunks` with each chunk's centred rows too, computed only when
    some far component needs them (an empty array otherwise)."""
    splits = split if isinstance(split, list) else [split]
    covariance_type = splits[0].params.covariance_type
    needs_rows = any(s.far_params is not None for s in splits)
    empty = np.zeros((0, x.shape[1]))
    for rows, phi in packed_chunks(x, covariance_type, center):
        if needs_rows:
            yield rows, phi, x[rows] if center is None else x[rows] - center
        else:
            yield rows, phi, empty
