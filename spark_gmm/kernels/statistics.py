"""Sufficient statistics of a block of rows, and their associative merge."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .covariance import FloatArray
from .estep import Chunk, PackedRoute, Responsibilities, e_step_routes
from .marginal import BlockLayout, block_layout, marginal_sums
from .packed import PackedSums, unpack_moments
from .parameters import GaussianParameters
from .split import SplitMixture


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
    assigned : ndarray of shape (K,) (K + 1 with a noise component, its rows last) or None
        Rows whose argmax responsibility is k; None when the pass did not count them
        (EM iterations do not need them, and finding each row's argmax costs ~15 %).
    entropy : float or None
        Σ w H(γ_n), H(γ_n) = −Σ_k γ_nk log γ_nk: how soft the assignments are (ICL adds
        twice it to BIC). Taken with ``assigned``, None otherwise.
    noise_resp_sum : float or None
        Σ w γ_n0, the noise component's share of the rows; None without a noise component.
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
    noise_resp_sum: float | None = None

    @classmethod
    def zeros(cls, params: GaussianParameters, count_assignments: bool = False
              ) -> SufficientStatistics:
        """The neutral element of :meth:`merge` for ``params``."""
        n_components, n_features = params.means.shape
        second_shape = params.covariance.second_moment_shape(n_components, n_features)
        n_assigned = n_components + params.has_noise
        return cls(
            shift=params.means,
            resp_sum=np.zeros(n_components),
            first=np.zeros((n_components, n_features)),
            second=np.zeros(second_shape),
            log_likelihood=0.0,
            weight_sum=0.0,
            row_count=0,
            assigned=np.zeros(n_assigned, dtype=np.int64) if count_assignments else None,
            entropy=0.0 if count_assignments else None,
            noise_resp_sum=0.0 if params.has_noise else None,
        )

    def merge(self, other: SufficientStatistics) -> SufficientStatistics:
        """Sum of two statistics computed with the same parameters (associative)."""
        if self.shift.shape != other.shift.shape or not np.array_equal(self.shift, other.shift):
            raise ValueError("cannot merge statistics computed with different parameters")
        if (self.assigned is None) != (other.assigned is None):
            raise ValueError("cannot merge statistics that counted assignments with ones that "
                             "did not")
        if (self.noise_resp_sum is None) != (other.noise_resp_sum is None):
            raise ValueError("cannot merge statistics with a noise component with ones "
                             "without")
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
            noise_resp_sum=None if self.noise_resp_sum is None or other.noise_resp_sum is None
            else self.noise_resp_sum + other.noise_resp_sum,
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


def row_entropy(resp: FloatArray, axis: int) -> FloatArray:
    """−Σ γ log γ of each row of responsibilities along ``axis`` (0 log 0 = 0)."""
    logs = np.zeros_like(resp)
    np.log(resp, out=logs, where=resp > 0)
    logs *= resp
    return -logs.sum(axis=axis)


class _Accumulator:
    """One mixture's sums over the chunks of a block, as its E-step route delivers them.

    Packed chunks add ``Γ Φᵀ`` (one GEMM) for the near components and exact centred moments
    for the far ones (:class:`~.split.SplitMixture`); exact chunks add centred moments for
    all components.
    """

    def __init__(self, model: GaussianParameters, split: SplitMixture | None,
                 count_assignments: bool, x: FloatArray, center: FloatArray | None) -> None:
        self.model, self.split = model, split
        self.total = SufficientStatistics.zeros(model, count_assignments)
        self.log_likelihood = 0.0
        self.entropy = 0.0 if count_assignments else None
        self.noise_resp_sum = 0.0 if model.has_noise else None
        # All K rows even when some are far (their packed sums unused, their set-aside rows
        # never gathered): see SplitMixture.
        self.sums = None if split is None else PackedSums(
            model.n_components, x, center, model.covariance_type, split.near)
        self.far = None if split is None or split.far_params is None else (
            SufficientStatistics.zeros(split.far_params))

    def add(self, chunk: Chunk, result: Responsibilities, weights: FloatArray | None) -> None:
        resp = result.resp
        if result.best is not None and self.total.assigned is not None:
            self.total.assigned[:] += np.bincount(result.best, minlength=resp.shape[0])
            row_entropies = row_entropy(resp, axis=0)
            self.entropy += float(row_entropies.sum() if weights is None
                                  else weights @ row_entropies)
        if weights is None:
            self.log_likelihood += float(result.log_likelihood.sum())
        else:
            self.log_likelihood += float(weights @ result.log_likelihood)
            resp *= weights
        if resp.shape[0] > self.model.n_components:  # the noise row, last
            self.noise_resp_sum += float(resp[-1].sum())
            resp = resp[:-1]
        if chunk.phi is None:  # exact route: every component's centred moments
            self._add_moments(self.total, chunk.centred, resp, self.model)
            return
        assert self.sums is not None and self.split is not None
        self.sums.add(resp, chunk.phi, chunk.rows)
        if self.far is not None:
            assert self.split.far_params is not None
            self._add_moments(self.far, chunk.centred, resp[self.split.far],
                              self.split.far_params)

    @staticmethod
    def _add_moments(total: SufficientStatistics, centred: FloatArray, resp: FloatArray,
                     model: GaussianParameters) -> None:
        first, second = model.covariance.moments(centred, resp.T, model.means)
        total.resp_sum[:] += resp.sum(axis=1)
        total.first[:] += first
        total.second[:] += second

    def result(self, n_rows: int, weight_sum: float) -> SufficientStatistics:
        total, split = self.total, self.split
        if split is not None and self.sums is not None:
            near, model = split.near, self.model
            total.resp_sum[near], total.first[near], total.second[near] = unpack_moments(
                self.sums.total()[near], model.means[near], model.covariance_type)
            if self.far is not None:
                far = split.far
                total.resp_sum[far], total.first[far], total.second[far] = (
                    self.far.resp_sum, self.far.first, self.far.second)
        return dataclasses.replace(total, log_likelihood=self.log_likelihood,
                                   weight_sum=weight_sum, row_count=n_rows,
                                   entropy=self.entropy, noise_resp_sum=self.noise_resp_sum)


def block_statistics(
    x: FloatArray,
    weights: FloatArray | None,
    models: Sequence[GaussianParameters],
    center: FloatArray | None = None,
    hard_assignment: bool = False,
    count_assignments: bool = False,
    exact: bool = False,
) -> list[SufficientStatistics]:
    """Statistics of one block of rows for several mixtures in a single pass over the rows.

    The E-step (:func:`~.estep.e_step_routes`) runs the mixtures together where they can
    share each chunk's packed features (hard assignments too: the one-hot responsibilities
    times the features); each mixture's responsibilities are then added into its sums.

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
        Also count the rows whose most likely component is k (``assigned``; None otherwise)
        and the entropy of the responsibilities.
    exact : bool
        Every mixture on the exact centred kernel (the reference for the packed one).

    Rows holding NaN (missing features, ``missingFeatures="marginalize"``) add their
    expected statistics given their observed features (:mod:`.marginal`); with
    ``hard_assignment`` (initialisation) they count as rows whose missing entries are
    ``center``, the data mean (0 when ``center`` is None).

    Returns
    -------
    list of SufficientStatistics, one per model.
    """
    if x.shape[0] == 0 or not models:
        return [SufficientStatistics.zeros(m, count_assignments) for m in models]
    layout = block_layout(x)
    if layout is not None:
        return _with_incomplete_rows(x, weights, models, center, layout, hard_assignment,
                                     count_assignments, exact)
    weight_sum = float(x.shape[0]) if weights is None else float(weights.sum())
    totals: list[SufficientStatistics | None] = [None] * len(models)
    for indices, route in e_step_routes(models, exact):
        splits = route.splits if isinstance(route, PackedRoute) else [None]
        accumulators = [_Accumulator(models[i], split, count_assignments, x, center)
                        for i, split in zip(indices, splits)]
        for chunk, results in route.chunks(x, center, count_assignments, hard_assignment):
            chunk_weights = None if weights is None else weights[chunk.rows]
            for accumulator, result in zip(accumulators, results):
                accumulator.add(chunk, result, chunk_weights)
        for i, accumulator in zip(indices, accumulators):
            totals[i] = accumulator.result(int(x.shape[0]), weight_sum)
    return totals  # type: ignore[return-value]


def _with_incomplete_rows(
    x: FloatArray, weights: FloatArray | None, models: Sequence[GaussianParameters],
    center: FloatArray | None, layout: BlockLayout, hard_assignment: bool,
    count_assignments: bool, exact: bool,
) -> list[SufficientStatistics]:
    # Complete rows take the packed/exact routes; the others add their marginal sums.
    if hard_assignment:
        filled = np.where(np.isnan(x), 0.0 if center is None else center, x)
        return block_statistics(filled, weights, models, center, True, count_assignments,
                                exact)
    # np.take with indices: a tenth of the time of a boolean-mask gather of the rows.
    complete, incomplete = layout.complete, layout.incomplete
    totals = block_statistics(np.take(x, complete, axis=0),
                              None if weights is None else np.take(weights, complete),
                              models, center, False, count_assignments, exact)
    rows = np.take(x, incomplete, axis=0)
    rows = rows if center is None else rows - center
    row_weights = None if weights is None else np.take(weights, incomplete)
    weight_sum = float(rows.shape[0]) if row_weights is None else float(row_weights.sum())
    merged = []
    for total, model in zip(totals, models):
        sums = marginal_sums(rows, row_weights, model, count_assignments, layout.groups)
        merged.append(total.merge(SufficientStatistics(
            shift=model.means, resp_sum=sums.resp_sum, first=sums.first, second=sums.second,
            log_likelihood=sums.log_likelihood, weight_sum=weight_sum,
            row_count=int(rows.shape[0]), assigned=sums.assigned, entropy=sums.entropy)))
    return merged
