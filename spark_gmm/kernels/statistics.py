"""Sufficient statistics of a block of rows, and their associative merge."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .chunks import rows_per_chunk
from .covariance import FloatArray, kernels_for
from .estep import log_responsibilities
from .flush import exp_flushed_in_place
from .kmeans import centre_scores, nearest_centre, nearest_one_hot
from .packed import n_packed_features, unpack_moments, uses_quadratic_features
from .parameters import GaussianParameters
from .split import SplitMixture, split_chunks

_MAX_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class SufficientStatistics:
    """What the M-step needs from a set of rows, for one mixture.

    All sums are weighted by the optional row weights w_n. ``first`` and ``second`` are
    centred at ``shift`` (the means the E-step was run with) so that data far from the
    origin loses no precision.

    Attributes
    ----------
    shift : ndarray of shape (K, D)
    resp_sum : ndarray of shape (K,)        Σ w γ_nk
    first : ndarray of shape (K, D)         Σ w γ_nk (x_n - shift_k)
    second : ndarray of shape (K, D, D) or (K, D)
        Σ w γ_nk (x_n - shift_k)(x_n - shift_k)ᵀ, or only its diagonal (diag, spherical).
    log_likelihood : float                  Σ w log p(x_n)
    weight_sum : float                      Σ w
    row_count : int
    assigned : ndarray of shape (K,) or None
        Rows whose argmax responsibility is k; None when the pass did not count them
        (EM iterations do not need them, and finding each row's argmax costs ~15 %).
    entropy : float or None
        Σ w H(γ_n), H(γ_n) = −Σ_k γ_nk log γ_nk: how soft the assignments are (ICL adds
        twice it to BIC). Taken with ``assigned``, None otherwise.
    """

    shift: FloatArray
    resp_sum: FloatArray
    first: FloatArray
    second: FloatArray
    log_likelihood: float
    weight_sum: float
    row_count: int
    assigned: np.ndarray | None
    entropy: float | None = None

    @classmethod
    def zeros(cls, params: GaussianParameters, count_assignments: bool = False
              ) -> SufficientStatistics:
        """The neutral element of :meth:`merge` for ``params``."""
        n_components, n_features = params.means.shape
        full = kernels_for(params.covariance_type).full_second_moment
        second_shape = (n_components, n_features) + ((n_features,) if full else ())
        return cls(
            shift=params.means,
            resp_sum=np.zeros(n_components),
            first=np.zeros((n_components, n_features)),
            second=np.zeros(second_shape),
            log_likelihood=0.0,
            weight_sum=0.0,
            row_count=0,
            assigned=np.zeros(n_components, dtype=np.int64) if count_assignments else None,
            entropy=0.0 if count_assignments else None,
        )

    def merge(self, other: SufficientStatistics) -> SufficientStatistics:
        """Sum of two statistics computed with the same parameters (associative)."""
        if self.shift.shape != other.shift.shape or not np.array_equal(self.shift, other.shift):
            raise ValueError("cannot merge statistics computed with different parameters")
        if (self.assigned is None) != (other.assigned is None):
            raise ValueError("cannot merge statistics that counted assignments with ones that "
                             "did not")
        return SufficientStatistics(
            shift=self.shift,
            resp_sum=self.resp_sum + other.resp_sum,
            first=self.first + other.first,
            second=self.second + other.second,
            log_likelihood=self.log_likelihood + other.log_likelihood,
            weight_sum=self.weight_sum + other.weight_sum,
            row_count=self.row_count + other.row_count,
            assigned=None if self.assigned is None else self.assigned + other.assigned,
            entropy=None if self.entropy is None or other.entropy is None
            else self.entropy + other.entropy,
        )

    @property
    def mean_log_likelihood(self) -> float:
        """Σ w log p(x) / Σ w: the quantity whose change decides convergence."""
        return self.log_likelihood / self.weight_sum if self.weight_sum > 0 else float("nan")


def merge_all(left: Sequence[SufficientStatistics], right: Sequence[SufficientStatistics]
              ) -> list[SufficientStatistics]:
    """Merge two lists of statistics model by model (one entry per mixture)."""
    if len(left) != len(right):
        raise ValueError("cannot merge statistics of different numbers of models")
    return [a.merge(b) for a, b in zip(left, right)]


def chunk_rows(n_components: int, n_features: int) -> int:
    """Rows per inner chunk for a K-component, D-feature mixture."""
    # The exact full kernel projects a chunk on every component at once: (chunk, K*D) values.
    return rows_per_chunk(n_components * n_features, _MAX_CHUNK_ROWS)


def row_entropy(resp: FloatArray, axis: int) -> FloatArray:
    """−Σ γ log γ of each row of responsibilities along ``axis`` (0 log 0 = 0)."""
    logs = np.zeros_like(resp)
    np.log(resp, out=logs, where=resp > 0)
    logs *= resp
    return -logs.sum(axis=axis)


def _statistics_from_responsibilities(
    x: FloatArray,
    weights: FloatArray | None,
    resp: FloatArray,
    shift: FloatArray,
    covariance_type: str,
    row_log_likelihood: FloatArray,
    count_assignments: bool,
) -> SufficientStatistics:
    row_weights = np.ones(x.shape[0]) if weights is None else weights
    weighted_resp = resp * row_weights[:, None]
    first, second = kernels_for(covariance_type).moments(x, weighted_resp, shift)
    assigned = (np.bincount(np.argmax(resp, axis=1), minlength=shift.shape[0]).astype(np.int64)
                if count_assignments else None)
    entropy = float(row_weights @ row_entropy(resp, axis=1)) if count_assignments else None
    return SufficientStatistics(
        shift=shift,
        resp_sum=weighted_resp.sum(axis=0),
        first=first,
        second=second,
        log_likelihood=float(row_weights @ row_log_likelihood),
        weight_sum=float(row_weights.sum()),
        row_count=int(x.shape[0]),
        assigned=assigned,
        entropy=entropy,
    )


def _chunk_statistics(x: FloatArray, weights: FloatArray | None, params: GaussianParameters,
                      count_assignments: bool) -> SufficientStatistics:
    log_likelihood, resp = log_responsibilities(x, params)
    exp_flushed_in_place(resp)
    return _statistics_from_responsibilities(
        x, weights, resp, params.means, params.covariance_type, log_likelihood,
        count_assignments,
    )


def _chunk_hard_statistics(x: FloatArray, weights: FloatArray | None,
                           params: GaussianParameters, count_assignments: bool
                           ) -> SufficientStatistics:
    resp = np.zeros((x.shape[0], params.n_components))
    resp[np.arange(x.shape[0]), nearest_centre(x, params.means)] = 1.0
    return _statistics_from_responsibilities(
        x, weights, resp, params.means, params.covariance_type, np.zeros(x.shape[0]),
        count_assignments,
    )


def _exact_block_statistics(
    x: FloatArray,
    weights: FloatArray | None,
    model: GaussianParameters,
    center: FloatArray | None,
    hard_assignment: bool,
    count_assignments: bool,
) -> SufficientStatistics:
    chunk_function = _chunk_hard_statistics if hard_assignment else _chunk_statistics
    total = SufficientStatistics.zeros(model, count_assignments)
    step = chunk_rows(model.n_components, model.n_features)
    for start in range(0, x.shape[0], step):
        chunk = x[start : start + step]
        if center is not None:
            chunk = chunk - center
        chunk_weights = None if weights is None else weights[start : start + step]
        total = total.merge(chunk_function(chunk, chunk_weights, model, count_assignments))
    return total


def _hard_responsibilities(phi: FloatArray, means: FloatArray) -> FloatArray:
    # Each row wholly to its nearest mean. φ's linear rows are the (centred) features, one
    # contiguous row per feature.
    return nearest_one_hot(centre_scores(means, phi[-1 - means.shape[1] : -1]))


def _far_statistics(split: SplitMixture, centred: FloatArray, resp: FloatArray
                    ) -> SufficientStatistics:
    # The far components' moments from a chunk's (weighted) responsibilities (K, n), exact
    # and centred at their means; only resp_sum, first and second are used.
    assert split.far_params is not None
    far_resp = resp[split.far].T
    first, second = kernels_for(split.params.covariance_type).moments(
        centred, far_resp, split.far_params.means)
    return SufficientStatistics(shift=split.far_params.means, resp_sum=far_resp.sum(axis=0),
                                first=first, second=second, log_likelihood=0.0,
                                weight_sum=0.0, row_count=0, assigned=None)


def _packed_block_statistics(
    x: FloatArray,
    weights: FloatArray | None,
    splits: Sequence[SplitMixture],
    center: FloatArray | None,
    count_assignments: bool,
    hard_assignment: bool = False,
) -> list[SufficientStatistics]:
    # ``splits``: mixtures whose covariance types share packed features (one φ per chunk).
    covariance_type = splits[0].params.covariance_type
    n_packed = n_packed_features(covariance_type, x.shape[1])
    # All K rows even when some are far (their packed sums unused): see SplitMixture.density.
    sums = [np.zeros((s.params.n_components, n_packed)) for s in splits]
    far_totals = [None if s.far_params is None else SufficientStatistics.zeros(s.far_params)
                  for s in splits]
    log_likelihoods = [0.0] * len(splits)
    assigned = [np.zeros(s.params.n_components, dtype=np.int64) if count_assignments else None
                for s in splits]
    entropies = [0.0 if count_assignments else None for _ in splits]
    for rows, phi, centred in split_chunks(x, list(splits), center):
        chunk_weights = None if weights is None else weights[rows]
        for index, split in enumerate(splits):
            if hard_assignment:  # k-means statistics: no densities, log-likelihood 0
                resp = _hard_responsibilities(phi, split.params.means)
                row_log_likelihood = np.zeros(phi.shape[1])
                if count_assignments:
                    assigned[index] += np.count_nonzero(resp, axis=1)
            else:
                resp, row_log_likelihood, best = split.log_responsibilities(
                    phi, centred, find_best=count_assignments)
                if best is not None:
                    assigned[index] += np.bincount(best, minlength=resp.shape[0])
                    row_entropies = row_entropy(resp, axis=0)
                    entropies[index] += float(row_entropies.sum() if chunk_weights is None
                                              else chunk_weights @ row_entropies)
            if chunk_weights is None:
                log_likelihoods[index] += float(row_log_likelihood.sum())
            else:
                log_likelihoods[index] += float(chunk_weights @ row_log_likelihood)
                resp *= chunk_weights
            sums[index] += resp @ phi.T
            far = far_totals[index]
            if far is not None:
                far_totals[index] = far.merge(_far_statistics(split, centred, resp))
    weight_sum = float(x.shape[0]) if weights is None else float(weights.sum())
    totals = []
    for split, model_sums, far, log_likelihood, counts, entropy in zip(
        splits, sums, far_totals, log_likelihoods, assigned, entropies
    ):
        model = split.params
        total = SufficientStatistics.zeros(model)  # filled in place before it is returned
        near = split.near
        total.resp_sum[near], total.first[near], total.second[near] = unpack_moments(
            model_sums[near], model.means[near], covariance_type)
        if far is not None:
            total.resp_sum[split.far], total.first[split.far], total.second[split.far] = (
                far.resp_sum, far.first, far.second)
        totals.append(dataclasses.replace(
            total, log_likelihood=log_likelihood, weight_sum=weight_sum,
            row_count=int(x.shape[0]), assigned=counts, entropy=entropy))
    return totals


def block_statistics(
    x: FloatArray,
    weights: FloatArray | None,
    models: Sequence[GaussianParameters],
    center: FloatArray | None = None,
    hard_assignment: bool = False,
    count_assignments: bool = False,
) -> list[SufficientStatistics]:
    """Statistics of one block of rows for several mixtures in a single pass over the rows.

    Mixtures share one packed feature matrix per chunk and take the two-GEMM path (hard
    assignments too: the one-hot responsibilities times the features). Components so tight
    and far from the data mean that the expansion would lose precision take the exact
    centred kernels instead (:class:`~spark_gmm.kernels.split.SplitMixture`), alone when
    others of their mixture are packed, and the whole mixture when none can be.

    Parameters
    ----------
    x : ndarray of shape (n, D)
        Raw feature rows.
    weights : ndarray of shape (n,) or None
        Non-negative row weights; None means every row weighs 1.
    models : sequence of GaussianParameters
        Mixtures expressed in coordinates centred at ``center``, of any covariance types.
    center : ndarray of shape (D,) or None
        Subtracted from every row before use (the data mean), so that data far from the
        origin keeps its precision. None means no centring.
    hard_assignment : bool
        Give each row wholly to its nearest mean (Euclidean) instead of the soft E-step
        responsibilities: the statistics that turn k-means centres into a mixture. The
        log-likelihood is then not computed (reported as 0).
    count_assignments : bool
        Also count the rows whose most likely component is k (``assigned``; None otherwise).

    Returns
    -------
    list of SufficientStatistics, one per model.
    """
    if x.shape[0] == 0 or not models:
        return [SufficientStatistics.zeros(m, count_assignments) for m in models]
    splits = [SplitMixture.of(m) for m in models]
    totals: list[SufficientStatistics | None] = [None] * len(models)
    # Mixtures whose types share packed features (full and tied; diag and spherical) share
    # each chunk's φ; each group takes its own.
    for quadratic in (True, False):
        group = [i for i, m in enumerate(models) if splits[i].packable
                 and uses_quadratic_features(m.covariance_type) == quadratic]
        if group:
            for index, total in zip(group, _packed_block_statistics(
                    x, weights, [splits[i] for i in group], center, count_assignments,
                    hard_assignment)):
                totals[index] = total
    return [total if total is not None
            else _exact_block_statistics(x, weights, model, center, hard_assignment,
                                         count_assignments)
            for model, total in zip(models, totals)]
