"""What one pass over the stored rows computes: one frozen request type per pass kind.

A request holds everything its pass needs (the mixtures, seeds or centres of every model or
restart that shares the pass) and knows how to fold one block of rows into one mergeable
value per model: :class:`~spark_gmm.kernels.SufficientStatistics`,
:class:`~spark_gmm.kernels.sampling.KeyedRows`, :class:`~spark_gmm.kernels.sampling.Candidates`
or :class:`~spark_gmm.kernels.kmeans.ClusterSums`. Every pass runner (a Spark job per pass,
resident tasks, Spark Connect; see :mod:`.passes`) folds a request with :func:`fold_blocks`,
whatever its kind, and the wire format (:mod:`.wire`) carries requests like its other values.

A new pass kind is one new frozen dataclass here with a ``kind`` name, a ``fold`` and an
``answer_bytes`` method, added to :data:`REQUEST_TYPES` (which registers it with the wire
format). Its fields may be arrays, numbers, strings, booleans, tuples of those, and tuples
of other wire values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from ..kernels import GaussianParameters, block_statistics, merge_all
from ..kernels.kmeans import ClusterSums
from ..kernels.marginal import incomplete_rows
from ..kernels.sampling import Candidates, KeyedRows
from .input_checks import Block


class PassRequest(Protocol):
    """One pass's work; implementations are frozen dataclasses listed in
    :data:`REQUEST_TYPES`."""

    kind: ClassVar[str]  # the pass's name in logs

    def fold(self, block: Block, center: np.ndarray) -> list[Any]:
        """One mergeable value per model (or restart) for the rows of ``block``.

        Parameters
        ----------
        block : (ndarray of shape (N, D), ndarray of shape (N,) or None)
            Raw rows and their weights.
        center : ndarray of shape (D,)
            The data mean the fit's mixtures and centres are expressed relative to.
        """
        ...

    def answer_bytes(self, n_features: int) -> int:
        """About how many bytes one task's answer takes (decides where answers merge)."""
        ...


def fold_blocks(request: PassRequest, center: np.ndarray, blocks: Iterable[Block]
                ) -> list[Any] | None:
    """``request.fold`` of every block, merged model by model in block order (None: no
    blocks)."""
    total = None
    for block in blocks:
        values = request.fold(block, center)
        total = values if total is None else merge_all(total, values)
    return total


def statistics_bytes(n_components: int, d: int) -> int:
    """About the bytes of one mixture's statistics in an answer: D² + D + 2 float64 values
    per component, Σγxxᵀ and Σγx among them."""
    return 8 * n_components * (d * d + d + 2)


@dataclass(frozen=True)
class StatisticsRequest:
    """The EM statistics of each mixture (centred coordinates) over every row; with
    ``hard_assignment`` each row counts wholly for its most likely component, with
    ``count_assignments`` the statistics also count the rows assigned to each component
    (the final model's cluster sizes). See :func:`~spark_gmm.kernels.block_statistics`."""

    kind: ClassVar[str] = "statistics"
    mixtures: tuple[GaussianParameters, ...]
    hard_assignment: bool = False
    count_assignments: bool = False

    def fold(self, block: Block, center: np.ndarray) -> list[Any]:
        return block_statistics(block[0], block[1], self.mixtures, center,
                                self.hard_assignment, self.count_assignments)

    def answer_bytes(self, n_features: int) -> int:
        return sum(statistics_bytes(m.n_components, n_features) for m in self.mixtures)


@dataclass(frozen=True)
class SampleRequest:
    """For each seed, up to ``size`` rows (raw coordinates) chosen pseudo-randomly, the
    same rows for any partitioning; with ``distinct`` no two are equal."""

    kind: ClassVar[str] = "sample"
    seeds: tuple[int, ...]
    size: int
    distinct: bool

    def fold(self, block: Block, center: np.ndarray) -> list[Any]:
        x, keyed = mean_imputed(block[0], center)
        return [KeyedRows.of(x, seed, self.size, self.distinct, keyed) for seed in self.seeds]

    def answer_bytes(self, n_features: int) -> int:
        # up to ``size`` rows and their keys per seed
        return 8 * self.size * (n_features + 1) * len(self.seeds)


@dataclass(frozen=True)
class CandidatesRequest:
    """One round of k-means‖ for each centre set (centred coordinates, shape (m, D)), each
    with its own seed and oversampling factor."""

    kind: ClassVar[str] = "candidates"
    centres: tuple[np.ndarray, ...]
    seeds: tuple[int, ...]
    oversampling: tuple[float, ...]

    def fold(self, block: Block, center: np.ndarray) -> list[Any]:
        x, keyed = mean_imputed(block[0], center)
        centred = x - center  # once per block, whatever the number of centre sets
        return [Candidates.of(centred, keyed, block[1], centres, seed, oversampling)
                for centres, seed, oversampling in zip(self.centres, self.seeds,
                                                       self.oversampling)]

    def answer_bytes(self, n_features: int) -> int:
        return 0  # about ``oversampling`` rows per centre set over all tasks: small


@dataclass(frozen=True)
class ClusterSumsRequest:
    """One Lloyd step's sums for each centre set (centred coordinates, shape (K, D))."""

    kind: ClassVar[str] = "cluster_sums"
    centres: tuple[np.ndarray, ...]

    def fold(self, block: Block, center: np.ndarray) -> list[Any]:
        centred = mean_imputed(block[0], center)[0] - center
        return [ClusterSums.of(centred, block[1], centres) for centres in self.centres]

    def answer_bytes(self, n_features: int) -> int:
        return 0  # K weights and K centres' sums per centre set: small


def mean_imputed(x: np.ndarray, center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` with its missing features (NaN) at ``center``, the data mean (what the
    initialisation passes see of rows with missing features), and the rows their sampling
    keys come from: missing features at 0, so that the keys do not depend on the centre
    (whose last bits depend on the partitioning). ``x`` itself twice when nothing is
    missing."""
    if incomplete_rows(x) is None:
        return x, x
    missing = np.isnan(x)
    return np.where(missing, center, x), np.where(missing, 0.0, x)


def centre_arrays(centres: Iterable[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Centre sets as request fields: float64 arrays, one per set."""
    return tuple(np.asarray(c, dtype=np.float64) for c in centres)


# Every pass kind; the wire format accepts exactly these request types.
REQUEST_TYPES: tuple[type, ...] = (StatisticsRequest, SampleRequest, CandidatesRequest,
                                   ClusterSumsRequest)
