"""Choosing rows pseudo-randomly, identically whatever the partitioning.

Each row gets a 64-bit key from its own values and a seed, so which rows are chosen does not
depend on how the data are partitioned or ordered: the same seed and data give the same
initial model on any cluster. Two mergeable value types carry what a set of rows contributes:
:class:`KeyedRows` (the rows with the smallest keys: a sample of a fixed size) and
:class:`Candidates` (one round of k-means‖ oversampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunks import rows_per_chunk
from .covariance import FloatArray
from .kmeans import centre_scores

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def _column_multipliers(n_features: int) -> np.ndarray:
    # Fixed odd 64-bit multipliers, one per column.
    return _splitmix64(np.arange(1, n_features + 1, dtype=np.uint64)) | np.uint64(1)


def row_keys(x: FloatArray, seed: int) -> np.ndarray:
    """A 64-bit pseudo-random key per row (uint64), a pure function of its values and ``seed``.

    The rows' bits are combined by one integer matrix product with odd multipliers (wrapping
    mod 2⁶⁴; distinct rows collide with probability about 2⁻⁶⁴), then mixed with the seed by
    splitmix64: 5 ms per 500k × 10 rows, where a splitmix64 round per column took 60 ms.
    """
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    hashes = bits @ _column_multipliers(x.shape[1])
    seed_bits = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    return _splitmix64(hashes ^ seed_bits)


def uniform(keys: np.ndarray) -> FloatArray:
    """Keys as uniform numbers in [0, 1) (their top 53 bits)."""
    return (keys >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class KeyedRows:
    """The rows with the smallest keys among some rows, at most ``size`` of them.

    ``keys`` hold the uint64 keys' bits as int64 (so that they travel as a plain array).
    """

    rows: FloatArray  # (m, D)
    keys: np.ndarray  # (m,) int64
    size: int
    distinct: bool

    @classmethod
    def of(cls, x: FloatArray, seed: int, size: int, distinct: bool,
           keyed: FloatArray | None = None) -> KeyedRows:
        # Keys from ``keyed`` (the rows as stored, when ``x`` was derived from them).
        return cls._smallest(x, row_keys(x if keyed is None else keyed, seed), size, distinct)

    @classmethod
    def _smallest(cls, rows: FloatArray, keys: np.ndarray, size: int, distinct: bool
                  ) -> KeyedRows:
        if distinct:
            keys, first = np.unique(keys, return_index=True)
            rows = rows[first]
        # Equal keys belong to equal rows (up to 2⁻⁶⁴ collisions), so ties need no order.
        if size < keys.shape[0]:  # a full sort of a block's keys costs ~60 ms per 500k rows
            smallest = np.argpartition(keys, size - 1)[:size] if size > 0 else keys[:0]
            order = smallest[np.argsort(keys[smallest], kind="stable")]
        else:
            order = np.argsort(keys, kind="stable")
        return cls(rows[order], keys[order].view(np.int64), size, distinct)

    def merge(self, other: KeyedRows) -> KeyedRows:
        """The smallest keys of both (associative and commutative)."""
        return KeyedRows._smallest(np.concatenate([self.rows, other.rows]),
                                   np.concatenate([self.keys, other.keys]).view(np.uint64),
                                   self.size, self.distinct)


@dataclass(frozen=True)
class Candidates:
    """What some rows contribute to one round of k-means‖ (Bahmani et al. 2012).

    Each row x is chosen independently with probability min(1, ℓ·w·d²(x)/φ), where d² is
    its squared distance to the current centres, φ = Σ w·d² over all rows, and ℓ the
    oversampling factor. With u a uniform number drawn from the row's key, x is chosen iff
    its ratio u / (w·d²) < ℓ/φ. φ is known only once every partition has reported, but a
    partition's own cost φ_p ≤ φ: keeping its rows with ratio < ℓ/φ_p keeps every row that
    can be chosen (about ℓ of them), and the driver applies ℓ/φ.

    Attributes
    ----------
    rows : ndarray of shape (m, D)
    ratios : ndarray of shape (m,)
    cost : float
        Σ w·d² of the rows these came from.
    """

    rows: FloatArray
    ratios: FloatArray
    cost: float
    oversampling: float

    @classmethod
    def of(cls, x: FloatArray, raw: FloatArray, w: FloatArray | None, centres: FloatArray,
           seed: int, oversampling: float) -> Candidates:
        """The candidates among the rows ``x`` (centred like ``centres``); their keys come
        from the raw rows ``raw``, so that they do not depend on the centring."""
        d2 = min_squared_distances(x, centres)
        weighted = d2 if w is None else d2 * w
        with np.errstate(divide="ignore"):
            ratios = uniform(row_keys(raw, seed)) / weighted  # u/0 = inf: never chosen
        return cls(x, ratios, float(weighted.sum()), oversampling)._pruned()

    def _pruned(self) -> Candidates:
        keep = self.ratios < (self.oversampling / self.cost if self.cost > 0 else 0.0)
        return Candidates(self.rows[keep], self.ratios[keep], self.cost, self.oversampling)

    def merge(self, other: Candidates) -> Candidates:
        """Both sets of rows' candidates (associative): rows that can no longer be chosen,
        with the larger cost, are dropped."""
        return Candidates(np.concatenate([self.rows, other.rows]),
                          np.concatenate([self.ratios, other.ratios]),
                          self.cost + other.cost, self.oversampling)._pruned()

    def chosen(self) -> FloatArray:
        """The rows chosen, once every row has reported (``self.cost`` is then φ), in the
        order of their ratios: the same order whatever the partitioning."""
        pruned = self._pruned()
        return pruned.rows[np.argsort(pruned.ratios, kind="stable")]


def min_squared_distances(x: FloatArray, centres: FloatArray) -> FloatArray:
    """Each row's squared distance to its nearest centre, shape (n,), in cache-sized chunks."""
    step = rows_per_chunk(centres.shape[0], 8192)
    nearest = np.empty(x.shape[0])
    for start in range(0, x.shape[0], step):
        chunk = x[start:start + step]
        # (K, n) scores: the minimum over axis 0 is vectorised, over axis 1 it is not.
        rows = slice(start, start + chunk.shape[0])
        np.add(centre_scores(centres, chunk.T).min(axis=0),
               np.einsum("nd,nd->n", chunk, chunk), out=nearest[rows])
    return np.maximum(nearest, 0.0, out=nearest)  # rounding can leave −ε
