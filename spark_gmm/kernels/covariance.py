"""One class per covariance type: everything that differs between ``full``, ``tied``, ``diag``
and ``spherical`` is a method here, side by side; outside this module only the packed kernel
looks at a type's packed-feature kind (:attr:`CovarianceType.quadratic_features`). A new
per-type operation is one abstract method on :class:`CovarianceType` and its implementations
below (one in a shared base where both matrix types or both diagonal types compute it alike).

Parameters are stored as precision-Cholesky factors (as scikit-learn does): for ``Σ = L Lᵀ``
the factor is ``P = L⁻ᵀ``, so ``Σ⁻¹ = P Pᵀ`` and ``(x - μ)ᵀ Σ⁻¹ (x - μ) = ‖Pᵀ (x - μ)‖²``; no
inverse or determinant of Σ is formed: ``log det Σ⁻¹ᐟ² = Σ log diag(P)``.

Shapes (K components, D features), covariances ``C`` = precision factors / second moments:
full [K, D, D] / [K, D, D]; tied [D, D] / [K, D, D]; diag [K, D] (1/σ) / [K, D];
spherical [K] (1/σ) / [K, D].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from ..errors import CovarianceError
from .linalg import FloatArray, cholesky_precision, largest_eigenpair, outer_moments, square_moments
from .prior import ConjugatePrior, log_inverse_gamma, log_inverse_wishart


class CovarianceType(ABC):
    """The operations of one covariance type (stateless; one instance per type)."""

    name: ClassVar[str]
    #: One covariance shared by every component.
    shared: ClassVar[bool] = False
    #: Packed features hold every product x_i x_j (else only the squares x_i²), and the
    #: second moments are matrices [K, D, D] (else their diagonals [K, D]).
    quadratic_features: ClassVar[bool]

    # Shapes: K components, D features, n rows; ``C`` the type's covariance shape, ``P`` its
    # precision-Cholesky factors (shape ``C`` too).
    # --- layout
    @abstractmethod
    def shape(self, k: int, d: int) -> tuple[int, ...]: ...  # C
    @abstractmethod
    def n_parameters(self, k: int, d: int) -> int: ...  # free covariance parameters (BIC)
    @abstractmethod
    def dense(self, c: FloatArray, k: int, d: int) -> FloatArray: ...  # C -> [K, D, D]
    @abstractmethod  # variances [D] -> C, every component the same diagonal
    def from_variances(self, v: FloatArray, k: int) -> FloatArray: ...
    # C of the features multiplied by ``scale`` [D] (back to original units after
    # standardisation); a spherical C scaled per feature is no longer spherical: [K, D].
    @abstractmethod
    def rescaled(self, c: FloatArray, scale: FloatArray) -> FloatArray: ...
    @abstractmethod  # C -> one row per component [K, width], as models are stored
    def rows(self, c: FloatArray, k: int) -> FloatArray: ...
    @abstractmethod
    def from_rows(self, rows: FloatArray, k: int, d: int) -> FloatArray: ...  # -> C

    # --- factors and densities
    @abstractmethod  # C -> P; CovarianceError naming the component when not PD
    def precision_cholesky(self, c: FloatArray) -> FloatArray: ...
    @abstractmethod
    def log_det(self, p: FloatArray, d: int) -> FloatArray: ...  # log det P_k: [K] or scalar
    @abstractmethod  # Λ_k = Σ_k⁻¹: [K, D, D] (matrix types) or its diagonal [K, D]
    def precisions(self, p: FloatArray, k: int, d: int) -> FloatArray: ...
    @abstractmethod  # squared distances of x [n, D] from means [K, D]: [n, K]
    def mahalanobis(self, x: FloatArray, means: FloatArray, p: FloatArray) -> FloatArray: ...

    # --- M-step
    # Σ_n γ_nk (x_n − s_k) [K, D] and the second moments about s_k (shape
    # :meth:`second_moment_shape`) from x [n, D], γ [n, K] and shifts s [K, D].
    @abstractmethod
    def moments(self, x: FloatArray, resp: FloatArray, shift: FloatArray
                ) -> tuple[FloatArray, FloatArray]: ...

    def second_moment_shape(self, k: int, d: int) -> tuple[int, ...]:  # [K, D, D] or [K, D]
        return (k, d, d) if self.quadratic_features else (k, d)

    def second_of_dense(self, dense: FloatArray) -> FloatArray:  # [K, D, D] -> that shape
        return dense if self.quadratic_features else np.diagonal(dense, axis1=1, axis2=2).copy()

    @abstractmethod  # second moments about s_k moved to s_k + δ_k: second − N_k δ_k δ_kᵀ
    def centred_scatter(self, second: FloatArray, nk: FloatArray, delta: FloatArray
                        ) -> FloatArray: ...
    @abstractmethod  # C from the scatter about the new means, N_k [K], reg on the diagonal
    def estimate(self, scatter: FloatArray, nk: FloatArray, reg: float) -> FloatArray: ...

    # --- conjugate prior (MAP-EM: kernels/prior.py; the modes derived in docs/bayesian.md)
    @abstractmethod  # Λ of this type from a matrix [D, D]: itself, its diagonal, its mean diagonal
    def prior_scale(self, matrix: FloatArray) -> FloatArray: ...
    # C of the posterior mode (the ML estimate with the prior's pseudo-rows) from N_k [K] and
    # S_k = W_k + κN_k/(κ+N_k) (x̄_k − μ_P)(x̄_k − μ_P)ᵀ (second-moment shape), reg on the diagonal
    @abstractmethod
    def posterior_mode(self, scatter: FloatArray, nk: FloatArray, prior: ConjugatePrior,
                       reg: float) -> FloatArray: ...
    @abstractmethod  # log density of the covariances under the prior, from P
    def log_covariance_prior(self, p: FloatArray, prior: ConjugatePrior, d: int) -> float: ...

    # --- geometry
    @abstractmethod  # the direction [D] of component j's largest variance, and that variance
    def principal_axis(self, c: FloatArray, j: int, d: int) -> tuple[FloatArray, float]: ...


class _MatrixCovariance(CovarianceType):
    """full and tied: matrix second moments and every product among the packed features."""

    quadratic_features = True

    def moments(self, x: FloatArray, resp: FloatArray, shift: FloatArray
                ) -> tuple[FloatArray, FloatArray]:
        return outer_moments(x, resp, shift)

    def centred_scatter(self, second: FloatArray, nk: FloatArray, delta: FloatArray
                        ) -> FloatArray:
        return second - nk[:, None, None] * delta[:, :, None] * delta[:, None, :]

    def prior_scale(self, matrix: FloatArray) -> FloatArray:
        return np.array(matrix, dtype=np.float64)

    def log_covariance_prior(self, p: FloatArray, prior: ConjugatePrior, d: int) -> float:
        # IW per component (full) or once (tied): P is [K, D, D] or [D, D].
        trace = np.sum(p @ np.swapaxes(p, -1, -2) * prior.scale, axis=(-2, -1))
        return log_inverse_wishart(self.log_det(p, d), trace, prior, d)


class _DiagonalCovariance(CovarianceType):
    """diag and spherical: per-feature variances, squares among the packed features."""

    quadratic_features = False

    def precision_cholesky(self, c: FloatArray) -> FloatArray:
        bad = ~(np.isfinite(c) & (c > 0.0))
        if np.any(bad):
            raise CovarianceError(int(np.argwhere(bad)[0][0]))
        return 1.0 / np.sqrt(c)

    def moments(self, x: FloatArray, resp: FloatArray, shift: FloatArray
                ) -> tuple[FloatArray, FloatArray]:
        return square_moments(x, resp, shift)

    def centred_scatter(self, second: FloatArray, nk: FloatArray, delta: FloatArray
                        ) -> FloatArray:
        return second - nk[:, None] * delta * delta

    def log_covariance_prior(self, p: FloatArray, prior: ConjugatePrior, d: int) -> float:
        return log_inverse_gamma(p, prior)  # IG per variance: P is [K, D] or [K]


class FullCovariance(_MatrixCovariance):
    """Each component its own covariance matrix: C = [K, D, D]."""

    name = "full"

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k, d, d)

    def n_parameters(self, k: int, d: int) -> int:
        return k * d * (d + 1) // 2

    def dense(self, c: FloatArray, k: int, d: int) -> FloatArray:
        return c

    def from_variances(self, v: FloatArray, k: int) -> FloatArray:
        return np.repeat(np.diag(v)[None], k, axis=0)

    def rescaled(self, c: FloatArray, scale: FloatArray) -> FloatArray:
        return c * scale[None, :, None] * scale[None, None, :]

    def rows(self, c: FloatArray, k: int) -> FloatArray:
        return c.reshape(k, -1)

    def from_rows(self, rows: FloatArray, k: int, d: int) -> FloatArray:
        return rows.reshape(k, d, d)

    def precision_cholesky(self, c: FloatArray) -> FloatArray:
        return np.stack([cholesky_precision(ck, k) for k, ck in enumerate(c)])

    def log_det(self, p: FloatArray, d: int) -> FloatArray:
        return np.sum(np.log(np.diagonal(p, axis1=1, axis2=2)), axis=1)

    def precisions(self, p: FloatArray, k: int, d: int) -> FloatArray:
        return p @ p.transpose(0, 2, 1)

    def mahalanobis(self, x: FloatArray, means: FloatArray, p: FloatArray) -> FloatArray:
        n_components, n_features = means.shape
        # One GEMM projects the rows onto every component's factor at once: [n, K*D].
        stacked = p.transpose(1, 0, 2).reshape(n_features, n_components * n_features)
        projected = x @ stacked
        projected -= np.einsum("kd,kde->ke", means, p).reshape(1, -1)
        per_component = projected.reshape(x.shape[0], n_components, n_features)
        # einsum squares and sums in one pass; 2x faster than ``**2`` then ``.sum(axis=2)``
        return np.einsum("nkd,nkd->nk", per_component, per_component)

    def estimate(self, scatter: FloatArray, nk: FloatArray, reg: float) -> FloatArray:
        cov = scatter / nk[:, None, None]
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        idx = np.arange(cov.shape[1])
        cov[:, idx, idx] += reg
        return cov

    def posterior_mode(self, scatter: FloatArray, nk: FloatArray, prior: ConjugatePrior,
                       reg: float) -> FloatArray:  # (Λ + S_k) / (ν + N_k + D + 2)
        return self.estimate(scatter + prior.scale, nk + (prior.dof + scatter.shape[1] + 2), reg)

    def principal_axis(self, c: FloatArray, j: int, d: int) -> tuple[FloatArray, float]:
        return largest_eigenpair(c[j])


class TiedCovariance(_MatrixCovariance):
    """One covariance matrix shared by every component: C = [D, D]."""

    name = "tied"
    shared = True

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (d, d)

    def n_parameters(self, k: int, d: int) -> int:
        return d * (d + 1) // 2

    def dense(self, c: FloatArray, k: int, d: int) -> FloatArray:
        return np.repeat(c[None], k, axis=0)

    def from_variances(self, v: FloatArray, k: int) -> FloatArray:
        return np.diag(v)

    def rescaled(self, c: FloatArray, scale: FloatArray) -> FloatArray:
        return c * scale[:, None] * scale[None, :]

    def rows(self, c: FloatArray, k: int) -> FloatArray:
        return np.repeat(c.reshape(1, -1), k, axis=0)  # the shared matrix in every row

    def from_rows(self, rows: FloatArray, k: int, d: int) -> FloatArray:
        return rows[0].reshape(d, d)

    def precision_cholesky(self, c: FloatArray) -> FloatArray:
        return cholesky_precision(c, None)

    def log_det(self, p: FloatArray, d: int) -> FloatArray:
        return np.asarray(np.sum(np.log(np.diag(p))))

    def precisions(self, p: FloatArray, k: int, d: int) -> FloatArray:
        return np.broadcast_to(p @ p.T, (k, d, d))

    def mahalanobis(self, x: FloatArray, means: FloatArray, p: FloatArray) -> FloatArray:
        projected_x = x @ p
        out = np.empty((x.shape[0], means.shape[0]))
        for k, center in enumerate(means @ p):
            diff = projected_x - center
            out[:, k] = np.einsum("nd,nd->n", diff, diff)
        return out

    def estimate(self, scatter: FloatArray, nk: FloatArray, reg: float) -> FloatArray:
        cov = scatter.sum(axis=0) / nk.sum()
        cov = 0.5 * (cov + cov.T)
        cov[np.diag_indices_from(cov)] += reg
        return cov

    def posterior_mode(self, scatter: FloatArray, nk: FloatArray, prior: ConjugatePrior,
                       reg: float) -> FloatArray:
        # (Λ + Σ_k S_k) / (ν + N + K + D + 1): Λ as one more scatter of weight ν + K + D + 1
        k, d = scatter.shape[:2]
        return self.estimate(np.concatenate([scatter, prior.scale[None]]),
                             np.append(nk, prior.dof + k + d + 1), reg)

    def principal_axis(self, c: FloatArray, j: int, d: int) -> tuple[FloatArray, float]:
        return largest_eigenpair(c)


class DiagCovariance(_DiagonalCovariance):
    """Each component its own per-feature variances: C = [K, D]."""

    name = "diag"

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k, d)

    def n_parameters(self, k: int, d: int) -> int:
        return k * d

    def dense(self, c: FloatArray, k: int, d: int) -> FloatArray:
        return c[:, :, None] * np.eye(d)

    def from_variances(self, v: FloatArray, k: int) -> FloatArray:
        return np.tile(v, (k, 1))

    def rescaled(self, c: FloatArray, scale: FloatArray) -> FloatArray:
        return c * scale**2

    def rows(self, c: FloatArray, k: int) -> FloatArray:
        return c

    def from_rows(self, rows: FloatArray, k: int, d: int) -> FloatArray:
        return rows.reshape(k, d)

    def log_det(self, p: FloatArray, d: int) -> FloatArray:
        return np.sum(np.log(p), axis=1)

    def precisions(self, p: FloatArray, k: int, d: int) -> FloatArray:
        return p * p

    def mahalanobis(self, x: FloatArray, means: FloatArray, p: FloatArray) -> FloatArray:
        out = np.empty((x.shape[0], means.shape[0]))
        for k in range(means.shape[0]):
            scaled = (x - means[k]) * p[k]
            out[:, k] = np.einsum("nd,nd->n", scaled, scaled)
        return out

    def estimate(self, scatter: FloatArray, nk: FloatArray, reg: float) -> FloatArray:
        return scatter / nk[:, None] + reg

    def prior_scale(self, matrix: FloatArray) -> FloatArray:
        return np.diag(matrix).copy()

    def posterior_mode(self, scatter: FloatArray, nk: FloatArray, prior: ConjugatePrior,
                       reg: float) -> FloatArray:  # (λ_j + S_kj) / (ν + N_k + 3)
        return self.estimate(scatter + prior.scale, nk + (prior.dof + 3), reg)

    def principal_axis(self, c: FloatArray, j: int, d: int) -> tuple[FloatArray, float]:
        i = int(np.argmax(c[j]))
        return np.eye(d)[i], float(c[j, i])


class SphericalCovariance(_DiagonalCovariance):
    """Each component one variance for every feature: C = [K]."""

    name = "spherical"

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k,)

    def n_parameters(self, k: int, d: int) -> int:
        return k

    def dense(self, c: FloatArray, k: int, d: int) -> FloatArray:
        return c[:, None, None] * np.eye(d)

    def from_variances(self, v: FloatArray, k: int) -> FloatArray:
        return np.full(k, v.mean())

    def rescaled(self, c: FloatArray, scale: FloatArray) -> FloatArray:
        return c[:, None] * scale**2

    def rows(self, c: FloatArray, k: int) -> FloatArray:
        return c[:, None]

    def from_rows(self, rows: FloatArray, k: int, d: int) -> FloatArray:
        return rows.reshape(k)

    def log_det(self, p: FloatArray, d: int) -> FloatArray:
        return d * np.log(p)

    def precisions(self, p: FloatArray, k: int, d: int) -> FloatArray:
        return np.repeat((p * p)[:, None], d, axis=1)

    def mahalanobis(self, x: FloatArray, means: FloatArray, p: FloatArray) -> FloatArray:
        out = np.empty((x.shape[0], means.shape[0]))
        for k in range(means.shape[0]):
            diff = x - means[k]
            out[:, k] = np.einsum("nd,nd->n", diff, diff) * p[k] ** 2
        return out

    def estimate(self, scatter: FloatArray, nk: FloatArray, reg: float) -> FloatArray:
        return (scatter / nk[:, None] + reg).mean(axis=1)

    def prior_scale(self, matrix: FloatArray) -> FloatArray:
        return np.asarray(np.diag(matrix).mean())

    def posterior_mode(self, scatter: FloatArray, nk: FloatArray, prior: ConjugatePrior,
                       reg: float) -> FloatArray:
        # (ς² + Σ_j S_kj) / (ν + (N_k + 1) D + 2): ς²/D per feature, 1 + (ν + 2)/D rows
        d = scatter.shape[1]
        return self.estimate(scatter + prior.scale / d, nk + (1 + (prior.dof + 2) / d), reg)

    def principal_axis(self, c: FloatArray, j: int, d: int) -> tuple[FloatArray, float]:
        return np.eye(d)[0], float(c[j])  # every axis is principal: the first one


_BY_NAME: dict[str, CovarianceType] = {
    t.name: t for t in (FullCovariance(), TiedCovariance(), DiagCovariance(),
                        SphericalCovariance())
}
COVARIANCE_TYPES = tuple(_BY_NAME)


def covariance_of(covariance_type: str) -> CovarianceType:
    """The :class:`CovarianceType` named ``covariance_type``, or a ValueError naming the
    choices."""
    try:
        return _BY_NAME[covariance_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"covarianceType must be one of {', '.join(COVARIANCE_TYPES)}; "
            f"got {covariance_type!r}"
        ) from None

