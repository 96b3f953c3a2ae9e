"""Weighted per-feature mean and variance, mergeable across any split of the rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .covariance import FloatArray


@dataclass(frozen=True)
class FeatureMoments:
    """Σw, the weighted mean and Σ w (x − mean)² of every feature, and its smallest and
    largest value, over some rows (those of positive weight).

    Attributes
    ----------
    weight : float
        Σ w (the row count when unweighted); 0 for no rows.
    mean : ndarray of shape (D,)
    scatter : ndarray of shape (D,)
    minimum, maximum : ndarray of shape (D,) or None
        The rows' bounding box (NaN ignored); None for no rows.
    """

    weight: float
    mean: FloatArray
    scatter: FloatArray
    minimum: FloatArray | None = None
    maximum: FloatArray | None = None

    @classmethod
    def of(cls, x: FloatArray, w: FloatArray | None = None) -> FeatureMoments:
        """The moments of the rows ``x`` (n, D) with optional weights ``w`` (n,)."""
        weights = np.ones(x.shape[0]) if w is None else w
        total = float(weights.sum())
        if total <= 0:
            return cls(0.0, np.zeros(x.shape[1]), np.zeros(x.shape[1]))
        mean = weights @ x / total
        diff = x - mean
        counted = x if w is None else x[w > 0]
        return cls(total, mean, weights @ (diff * diff), np.fmin.reduce(counted, axis=0),
                   np.fmax.reduce(counted, axis=0))

    def merge(self, other: FeatureMoments) -> FeatureMoments:
        """The moments of both sets of rows (Chan et al.'s pairwise update: exact for any
        split, no cancellation of raw moments)."""
        total = self.weight + other.weight
        if other.weight <= 0:
            return self
        if self.weight <= 0:
            return other
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.weight / total)
        return FeatureMoments(total, mean,
                              self.scatter + other.scatter
                              + delta * delta * (self.weight * other.weight / total),
                              _bound(np.fmin, self.minimum, other.minimum),
                              _bound(np.fmax, self.maximum, other.maximum))

    @property
    def variance(self) -> FloatArray:
        """Biased (population) variance of every feature, shape (D,)."""
        return self.scatter / self.weight


def _bound(pick: np.ufunc, a: FloatArray | None, b: FloatArray | None) -> FloatArray | None:
    # The elementwise min or max of two bounds, either of which may be unknown.
    return b if a is None else a if b is None else pick(a, b)
