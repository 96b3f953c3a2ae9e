"""The conjugate prior of a MAP-EM fit: the estimator's settings, and the hyperparameters
they leave unset taken from the data (mclust's ``defaultPrior``, Fraley & Raftery 2007).

The defaults need the weighted mean of the rows (the storing pass computes it) and, for
``priorScale``, their unbiased covariance: for ``diag`` and ``spherical`` only its diagonal,
which the storing pass's per-feature variances give; for ``full`` and ``tied`` the whole
matrix, which one statistics pass of a one-component mixture computes, once per fit (shared
by every model of a ``fitMultiple``), before initialisation. A set ``priorScale`` needs no
pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..kernels import (
    ConjugatePrior,
    FeatureMoments,
    GaussianParameters,
    SufficientStatistics,
    covariance_of,
)


@dataclass(frozen=True)
class PriorSettings:
    """The estimator's prior params (``prior="conjugate"``); None: taken from the data.

    Attributes
    ----------
    mean : tuple of float or None
        μ_P [D] in the features' coordinates; None: the weighted mean of the rows.
    shrinkage : float
        κ > 0.
    dof : float or None
        ν; None: D + 2.
    scale : tuple of float or None
        Λ as 1 value (× identity), D (a diagonal) or D × D (row-major); None: the rows'
        unbiased covariance divided by K^(2/D).
    """

    mean: tuple[float, ...] | None = None
    shrinkage: float = 0.01
    dof: float | None = None
    scale: tuple[float, ...] | None = None

    @classmethod
    def of(cls, prior: str, mean: Sequence[float] | None, shrinkage: float,
           dof: float | None, scale: Sequence[float] | None) -> PriorSettings | None:
        """The settings of the estimator's params; None for ``prior="none"``."""
        if prior == "none":
            return None
        return cls(None if mean is None else tuple(float(v) for v in mean), float(shrinkage),
                   None if dof is None else float(dof),
                   None if scale is None else tuple(float(v) for v in scale))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def needs_covariance(self, covariance_type: str) -> bool:
        """Whether the default scale needs the rows' whole covariance matrix (one pass)."""
        return self.scale is None and covariance_of(covariance_type).quadratic_features

    def resolve(self, k: int, covariance_type: str, data_mean: np.ndarray,
                data_covariance: np.ndarray, center: np.ndarray) -> ConjugatePrior:
        """The hyperparameters in coordinates centred at ``center``.

        ``data_mean`` [D] and ``data_covariance`` [D, D] (unbiased; only its diagonal is
        read for ``diag`` and ``spherical``) are the rows', in the features' coordinates.

        Raises
        ------
        InvalidInputError
            ``priorMean`` or ``priorScale`` of the wrong length, a ``priorScale`` that is
            not positive definite, or ``priorDegreesOfFreedom`` ≤ D − 1 for ``full`` or
            ``tied``.
        """
        d = data_mean.shape[0]
        covariance = covariance_of(covariance_type)
        mean = data_mean if self.mean is None else np.array(self.mean)
        if mean.shape != (d,):
            raise InvalidInputError(f"priorMean has {mean.shape[0]} values; the data have "
                                    f"{d} features: give {d} values or unset it")
        dof = float(d + 2) if self.dof is None else self.dof
        if covariance.quadratic_features and not dof > d - 1:
            raise InvalidInputError(f"priorDegreesOfFreedom must be > D − 1 = {d - 1} for "
                                    f"covarianceType={covariance_type!r}; got {dof:g}")
        matrix = (data_covariance / k ** (2.0 / d) if self.scale is None
                  else scale_matrix(self.scale, d))
        scale = covariance.prior_scale(matrix)
        finite = bool(np.all(np.isfinite(scale)))
        if not (finite and np.all((np.linalg.eigvalsh(scale) if scale.ndim == 2 else scale) > 0)):
            raise InvalidInputError(
                "the prior scale is not positive definite (a constant feature with priorScale "
                "unset, or a priorScale that is not); set priorScale or drop the feature")
        return ConjugatePrior(mean - center, self.shrinkage, dof, scale)


def scale_matrix(values: Sequence[float], d: int) -> np.ndarray:
    """Λ [D, D] from 1 value (× identity), D (a diagonal) or D × D (row-major, symmetrised).

    Raises
    ------
    InvalidInputError
        Another number of values.
    """
    array = np.array(values)
    if array.size == 1:
        return np.eye(d) * array[0]
    if array.size == d:
        return np.diag(array)
    if array.size == d * d:
        return 0.5 * (array.reshape(d, d) + array.reshape(d, d).T)
    raise InvalidInputError(f"priorScale has {array.size} values; with {d} features give 1, "
                            f"{d} or {d * d}")


def resolve_priors(priors: Sequence[PriorSettings | None], ks: Sequence[int],
                   covariance_types: Sequence[str], moments: FeatureMoments, n_rows: int,
                   center: np.ndarray,
                   statistics: Callable[[list[GaussianParameters]], list[SufficientStatistics]]
                   ) -> list[ConjugatePrior | None]:
    """Every fit's prior (None without), centred at ``center``; ``statistics`` runs the one
    covariance pass when a ``full`` or ``tied`` fit leaves ``priorScale`` unset."""
    if all(p is None for p in priors):
        return [None] * len(priors)
    correction = n_rows / max(n_rows - 1, 1)  # unbiased for unit weights, as R's cov()
    covariance = np.diag(moments.variance * correction)
    if any(p is not None and p.needs_covariance(t) for p, t in zip(priors, covariance_types)):
        # One Gaussian at the observed means with the observed variances: a missing entry
        # (missingFeatures) adds its feature's variance to the diagonal and nothing off it;
        # complete rows' sums do not depend on it.
        spread = np.where(moments.variance > 0, moments.variance, 1.0)
        one = GaussianParameters.from_covariances(
            np.ones(1), (moments.mean - center)[None, :], np.diag(spread)[None], "full")
        [stats] = statistics([one])
        delta = stats.first / stats.weight_sum
        scatter = covariance_of("full").centred_scatter(
            stats.second, np.array([stats.weight_sum]), delta)[0]
        covariance = 0.5 * (scatter + scatter.T) / stats.weight_sum * correction
    return [None if p is None else p.resolve(k, t, moments.mean, covariance, center)
            for p, k, t in zip(priors, ks, covariance_types)]
