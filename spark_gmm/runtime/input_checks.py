"""What can be wrong with a row's features, decided in one place for the whole project.

A row is invalid when its features are null, hold a NaN, ±Inf or null element, or have the
wrong number of elements (:data:`REASONS`). With ``missingFeatures="marginalize"`` a NaN or
null element is a missing feature instead: the row is invalid only when it holds a ±Inf or
observes no feature at all (still reason ``non_finite``). :class:`FeatureRows` decides it
for an Arrow batch in the executors: the writing pass of a fit counts with it
(:class:`RowChecks`) and scoring nulls the outputs of the rows it rejects.
:func:`invalid_reason_column` is the same rule as a Spark SQL expression, for the jobs,
which label or quarantine each invalid row by reason without a trip through Python (a test
holds the two forms equal).

The driver merges the writing pass's counts and raises before any EM work
(:func:`input_counts`), so validation costs no pass of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column
from pyspark.sql import functions as F

from ..errors import InvalidInputError

# Rows of features (n, D) and their optional weights (n,), as every pass hands them around.
Block = tuple[np.ndarray, "np.ndarray | None"]
REASONS = ("null", "non_finite", "wrong_length")


@dataclass(frozen=True)
class FeatureRows:
    """A batch of feature arrays (Arrow ``list<double>``), inspected once.

    Attributes
    ----------
    null : ndarray of bool, shape (n,)
        The row itself is null.
    non_finite : ndarray of bool, shape (n,)
        Some element is NaN, ±Inf or null.
    infinite : ndarray of bool, shape (n,)
        Some element is ±Inf.
    missing : ndarray of int64, shape (n,)
        NaN or null elements of each row (missing features).
    lengths : ndarray of int64, shape (n,)
        Elements per row (0 for null rows).
    values : ndarray of float64
        Every element under the batch's rows in order, null elements as NaN (Arrow may keep
        values under a null row: they are here, and never selected).
    """

    features: pa.Array = field(repr=False)
    null: np.ndarray
    non_finite: np.ndarray
    lengths: np.ndarray
    values: np.ndarray
    infinite: np.ndarray
    missing: np.ndarray

    @classmethod
    def of(cls, features: pa.Array | pa.ChunkedArray) -> FeatureRows:
        if isinstance(features, pa.ChunkedArray):
            features = features.combine_chunks()
        null = features.is_null().to_numpy(zero_copy_only=False)
        lengths = pc.fill_null(pc.list_value_length(features), 0).to_numpy(
            zero_copy_only=False).astype(np.int64)
        # Not flatten(): it drops what lies under null rows, list_parent_indices does not.
        offsets = features.offsets
        start, stop = offsets[0].as_py(), offsets[-1].as_py()
        values = features.values.slice(start, stop - start).to_numpy(zero_copy_only=False)
        non_finite = np.zeros(len(features), dtype=bool)
        infinite = np.zeros(len(features), dtype=bool)
        missing = np.zeros(len(features), dtype=np.int64)
        bad_values = ~np.isfinite(values)
        if bad_values.any():
            parents = _parents(features)
            non_finite[parents[bad_values]] = True
            non_finite &= ~null
            infinite[parents[np.isinf(values)]] = True
            infinite &= ~null
            missing = np.bincount(parents[np.isnan(values)], minlength=len(features))
            missing[null] = 0
        return cls(features, null, non_finite, lengths, values, infinite, missing)

    def __len__(self) -> int:
        return int(self.null.shape[0])

    def length_range(self) -> tuple[int, int]:
        """(shortest, longest) length of the non-null rows; (-1, -1) when there are none."""
        present = self.lengths[~self.null]
        return (int(present.min()), int(present.max())) if present.size else (-1, -1)

    def bad_values(self, marginalize: bool = False) -> np.ndarray:
        """Rows invalid by their values, shape (n,): a NaN, ±Inf or null element; with
        ``marginalize``, a ±Inf element or no observed element."""
        if not marginalize:
            return self.non_finite
        return self.infinite | (~self.null & (self.missing >= np.maximum(self.lengths, 1)))

    def valid(self, n_features: int, marginalize: bool = False) -> np.ndarray:
        """Rows with ``n_features`` finite elements (with ``marginalize``: no ±Inf and at
        least one observed), shape (n,)."""
        return ~self.null & ~self.bad_values(marginalize) & (self.lengths == n_features)

    def reasons(self, n_features: int, marginalize: bool = False) -> list[str | None]:
        """Each row's first reason in :data:`REASONS` order, None for a valid row."""
        return [None if ok else "null" if null else "non_finite" if bad else "wrong_length"
                for ok, null, bad in zip(self.valid(n_features, marginalize), self.null,
                                         self.bad_values(marginalize))]

    def rows(self, selected: np.ndarray, n_features: int) -> np.ndarray:
        """The selected rows (non-null, each of ``n_features`` elements) as an (m, D) float64
        array."""
        if selected.all() and self.values.size == len(self) * n_features:
            return self.values.reshape(len(self), n_features)
        keep = selected[_parents(self.features)]
        return self.values[keep].reshape(-1, n_features)


def _parents(features: pa.Array) -> np.ndarray:
    # The row of every value between the first and the last offset (FeatureRows.values).
    return pc.list_parent_indices(features).to_numpy(zero_copy_only=False)


def invalid_reason_column(features: Column, n_features: int | None,
                          marginalize: bool = False) -> Column:
    """The rule of :class:`FeatureRows` as a Spark SQL expression over an ``array<double>``
    column: its reason in :data:`REASONS` order, null for a valid row. Without
    ``n_features`` any non-empty length is right."""
    infinity = F.lit(float("inf"))
    if marginalize:
        bad = (F.exists(features, lambda v: F.abs(v) == infinity)
               | (F.forall(features, lambda v: v.isNull() | F.isnan(v))
                  & (F.size(features) > 0)))
    else:
        bad = F.exists(features, lambda v: v.isNull() | F.isnan(v) | (F.abs(v) == infinity))
    wrong_length = (F.size(features) != F.lit(n_features) if n_features
                    else F.size(features) == 0)
    return (F.when(features.isNull(), REASONS[0]).when(bad, REASONS[1])
            .when(wrong_length, REASONS[2]))


@dataclass(frozen=True)
class InputCounts:
    """What the fit needs to know about its validated input."""

    n_rows: int
    n_features: int
    weight_sum: float
    # Rows with i + 1 missing features (missingFeatures="marginalize"; empty otherwise).
    incomplete_by_missing: tuple[int, ...] = ()


@dataclass
class RowChecks:
    """Counts over the rows of one partition, or of several merged.

    ``min_length``/``max_length`` are -1 while no non-null row has been seen.
    ``bad_rows`` counts rows with a NaN, ±Inf or null element; of the non-null rows,
    ``infinite_rows`` those with a ±Inf, ``unobserved_rows`` those with every element NaN or
    null, and ``incomplete_by_missing[i]`` those with i + 1 NaN or null elements and no ±Inf
    (what ``missingFeatures="marginalize"`` decides with).
    """

    rows: int = 0
    null_rows: int = 0
    bad_rows: int = 0
    min_length: int = -1
    max_length: int = -1
    bad_weights: int = 0
    negative_weights: int = 0
    infinite_rows: int = 0
    unobserved_rows: int = 0
    incomplete_by_missing: list[int] = field(default_factory=list)
    weight_sum: float = 0.0

    def merge(self, other: RowChecks) -> RowChecks:
        return RowChecks(
            self.rows + other.rows, self.null_rows + other.null_rows,
            self.bad_rows + other.bad_rows,
            *_length_range((self.min_length, self.max_length),
                           (other.min_length, other.max_length)),
            self.bad_weights + other.bad_weights,
            self.negative_weights + other.negative_weights,
            self.infinite_rows + other.infinite_rows,
            self.unobserved_rows + other.unobserved_rows,
            _added(self.incomplete_by_missing, other.incomplete_by_missing),
            self.weight_sum + other.weight_sum,
        )

    def _count(self, batch: pa.RecordBatch, has_weights: bool) -> Block | None:
        # Counts one Arrow batch of ``x`` (array<double>) and ``w`` (double); returns the
        # batch as a block when its rows are all non-null and of one length.
        rows = FeatureRows.of(batch.column("x"))
        self.rows += len(rows)
        self.null_rows += int(rows.null.sum())
        self.bad_rows += int(rows.non_finite.sum())
        if rows.non_finite.any():
            self._count_missing(rows)
        shortest, longest = rows.length_range()
        self.min_length, self.max_length = _length_range(
            (self.min_length, self.max_length), (shortest, longest))
        w = None
        if has_weights:
            w = batch.column("w").to_numpy(zero_copy_only=False).astype(np.float64)
            finite = np.isfinite(w)
            self.bad_weights += int(np.count_nonzero(~finite))
            self.negative_weights += int(np.count_nonzero(w < 0))
            self.weight_sum += float(w[finite].sum())
        if rows.null.any() or shortest != longest:
            return None
        return rows.rows(np.ones(len(rows), dtype=bool), longest), w

    def _count_missing(self, rows: FeatureRows) -> None:
        self.infinite_rows += int(rows.infinite.sum())
        present = ~rows.null & ~rows.infinite & (rows.missing > 0)
        unobserved = present & (rows.missing >= rows.lengths)
        self.unobserved_rows += int(unobserved.sum())
        by_count = np.bincount(rows.missing[present & ~unobserved])[1:]
        self.incomplete_by_missing = _added(self.incomplete_by_missing, by_count.tolist())

    def blocks(self, batches: Iterable[pa.RecordBatch], has_weights: bool) -> Iterator[Block]:
        """Count every batch; yield them as blocks while the partition's rows are uniform.

        Once a batch is not (null rows, mixed lengths), nothing more is yielded but counting
        goes on to the end, so the counts cover every row; the fit then fails on them.
        """
        length: int | None = None
        stopped = False
        for batch in batches:
            if batch.num_rows == 0:
                continue
            block = self._count(batch, has_weights)
            if stopped:
                continue
            if block is None or (length is not None and block[0].shape[1] != length):
                stopped = True
                continue
            length = block[0].shape[1]
            yield block


def check_fields() -> list[tuple[str, pa.DataType]]:
    """The fields of :class:`RowChecks` and their Arrow types (a partition's handle)."""
    types = {"int": pa.int64(), "float": pa.float64(), "list[int]": pa.list_(pa.int64())}
    return [(f.name, types[str(f.type)]) for f in dataclasses.fields(RowChecks)]


def _added(a: list[int], b: list[int]) -> list[int]:
    # Element-wise sum of two count lists of any lengths.
    longest = max(len(a), len(b))
    return [int(x + y) for x, y in zip(a + [0] * (longest - len(a)), b + [0] * (longest - len(b)))]


def _length_range(*ranges: tuple[int, int]) -> tuple[int, int]:
    # The (shortest, longest) over ranges whose rows were seen; (-1, -1) marks none.
    seen = [(low, high) for low, high in ranges if low >= 0]
    return min((low for low, _ in seen), default=-1), max((high for _, high in seen), default=-1)
def input_counts(checks: RowChecks, features_col: str, weight_col: str | None,
                 marginalize: bool = False) -> InputCounts:
    """Raise on bad input; otherwise the counts the fit uses. With ``marginalize``, NaN and
    null elements are missing features, not bad values.

    Raises
    ------
    InvalidInputError
        Empty input, null or non-finite features, features of unequal or zero length,
        weights that are null, NaN, infinite, negative or all zero. The message names the
        column and the number of offending rows.
    """
    rows = checks.rows
    if rows == 0:
        raise InvalidInputError("the input DataFrame is empty; there is nothing to fit")
    if checks.null_rows:
        raise InvalidInputError(
            f"features column {features_col!r} is null in {checks.null_rows} of {rows} "
            "rows; drop or impute them before fitting"
        )
    if marginalize and (checks.infinite_rows or checks.unobserved_rows):
        raise InvalidInputError(
            f"features column {features_col!r} has infinite values or no observed value in "
            f"{checks.infinite_rows + checks.unobserved_rows} of {rows} rows "
            f"({checks.infinite_rows} with infinite values, {checks.unobserved_rows} with "
            "every feature missing); drop them before fitting")
    if checks.bad_rows and not marginalize:
        raise InvalidInputError(
            f"features column {features_col!r} has NaN, infinite or null values in "
            f"{checks.bad_rows} of {rows} rows; drop or impute them before fitting"
        )
    if checks.min_length != checks.max_length or checks.max_length <= 0:
        raise InvalidInputError(
            f"features column {features_col!r} has vectors of different or zero lengths "
            f"(from {checks.min_length} to {checks.max_length}); every row needs the same "
            "number of features"
        )
    weight_sum = float(rows)
    if weight_col is not None:
        if checks.bad_weights or checks.negative_weights:
            raise InvalidInputError(
                f"weight column {weight_col!r} has {checks.bad_weights} null/NaN/infinite "
                f"and {checks.negative_weights} negative values in {rows} rows; weights "
                "must be finite and >= 0"
            )
        weight_sum = checks.weight_sum
        if not weight_sum > 0:
            raise InvalidInputError(
                f"weight column {weight_col!r} sums to {weight_sum}; at least one row needs "
                "a positive weight"
            )
    return InputCounts(rows, checks.max_length, weight_sum,
                       tuple(checks.incomplete_by_missing) if marginalize else ())
