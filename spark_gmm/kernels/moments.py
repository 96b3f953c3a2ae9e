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
    observed : ndarray of shape (D,) or None
        Σ w over the rows that observe each feature, when some value is NaN (a missing
        feature); ``mean`` and ``scatter`` are then over the observed values. None: every
        value observed (Σ w is ``weight``).
    """

    weight: float
    mean: FloatArray
    scatter: FloatArray
    minimum: FloatArray | None = None
    maximum: FloatArray | None = None
    observed: FloatArray | None = None

    @classmethod
    def of(cls, x: FloatArray, w: FloatArray | None = None) -> FeatureMoments:
        """The moments of the rows ``x`` (n, D) with optional weights ``w`` (n,)."""
        weights = np.ones(x.shape[0]) if w is None else w
        total = float(weights.sum())
        if total <= 0:
            return cls(0.0, np.zeros(x.shape[1]), np.zeros(x.shape[1]))
        if np.isnan(np.sum(x)):
            return cls._of_observed(x, weights, total, w)
        mean = weights @ x / total
        diff = x - mean
        return cls(total, mean, weights @ (diff * diff), *_bounds(x, w))

    def merge(self, other: FeatureMoments) -> FeatureMoments:
        """The moments of both sets of rows (Chan et al.'s pairwise update: exact for any
        split, no cancellation of raw moments)."""
        total = self.weight + other.weight
        if other.weight <= 0:
            return self
        if self.weight <= 0:
            return other
        if self.observed is not None or other.observed is not None:
            return self._merge_observed(other)
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
        return self.scatter / (self.weight if self.observed is None else self.observed)

    @classmethod
    def _of_observed(cls, x: FloatArray, weights: FloatArray, total: float,
                     w: FloatArray | None) -> FeatureMoments:
        # Each feature's moments over the rows that observe it.
        seen = ~np.isnan(x)
        observed = weights @ seen
        values = np.where(seen, x, 0.0)
        mean = np.divide(weights @ values, observed, out=np.zeros(x.shape[1]),
                         where=observed > 0)
        with np.errstate(invalid="ignore"):  # ±Inf rows: invalid, the fit stops on them
            diff = np.where(seen, x - mean, 0.0)
        return cls(total, mean, weights @ (diff * diff), *_bounds(x, w), observed)

    def _merge_observed(self, other: FeatureMoments) -> FeatureMoments:
        # Chan's update feature by feature, each with its own observed weight.
        a = np.full_like(self.mean, self.weight) if self.observed is None else self.observed
        b = np.full_like(other.mean, other.weight) if other.observed is None else other.observed
        both = a + b
        share = np.divide(b, both, out=np.zeros_like(both), where=both > 0)
        delta = other.mean - self.mean
        return FeatureMoments(self.weight + other.weight, self.mean + delta * share,
                              self.scatter + other.scatter + delta * delta * a * share,
                              _bound(np.fmin, self.minimum, other.minimum),
                              _bound(np.fmax, self.maximum, other.maximum), both)


def _bounds(x: FloatArray, w: FloatArray | None) -> tuple[FloatArray | None, FloatArray | None]:
    # Each feature's minimum and maximum over the rows of positive weight (fmin/fmax skip
    # NaN); unknown (None) when no row has one: a block of rows whose weights are all NaN,
    # null or 0, which the checks count and the fit stops on.
    counted = x if w is None else x[w > 0]
    if counted.shape[0] == 0:
        return None, None
    return np.fmin.reduce(counted, axis=0), np.fmax.reduce(counted, axis=0)


def _bound(pick: np.ufunc, a: FloatArray | None, b: FloatArray | None) -> FloatArray | None:
    # The elementwise min or max of two bounds, either of which may be unknown.
    return b if a is None else a if b is None else pick(a, b)
