"""Counting bad rows while the features are stored, and the errors that name them.

The pass that writes the features (see :func:`spark_gmm.data.store_blocks`) counts, per
partition, what would make the fit meaningless: null rows, rows with NaN/±Inf/null elements,
rows of different lengths, and bad weights. The driver merges the counts and raises before
any EM work, so validation costs no pass of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .block_store import Block


class InvalidInputError(ValueError):
    """The input data cannot be used as given; the message says what to change."""


@dataclass(frozen=True)
class InputCounts:
    """What the fit needs to know about its validated input."""

    n_rows: int
    n_features: int
    weight_sum: float


@dataclass
class RowChecks:
    """Counts over the rows of one partition, or of several merged.

    ``min_length``/``max_length`` are -1 while no non-null row has been seen.
    """

    rows: int = 0
    null_rows: int = 0
    bad_rows: int = 0
    min_length: int = -1
    max_length: int = -1
    bad_weights: int = 0
    negative_weights: int = 0
    weight_sum: float = 0.0

    def merge(self, other: RowChecks) -> RowChecks:
        return RowChecks(
            self.rows + other.rows, self.null_rows + other.null_rows,
            self.bad_rows + other.bad_rows,
            *_length_range((self.min_length, self.max_length),
                           (other.min_length, other.max_length)),
            self.bad_weights + other.bad_weights,
            self.negative_weights + other.negative_weights,
            self.weight_sum + other.weight_sum,
        )

    def _count(self, batch: pa.RecordBatch, has_weights: bool) -> Block | None:
        # Counts one Arrow batch of ``x`` (array<double>) and ``w`` (double); returns the
        # batch as a block when its rows are all non-null and of one length.
        features = batch.column("x")
        self.rows += batch.num_rows
        self.null_rows += features.null_count
        lengths = pc.min_max(pc.list_value_length(features))
        shortest, longest = lengths["min"].as_py(), lengths["max"].as_py()
        if shortest is not None:
            self.min_length, self.max_length = _length_range(
                (self.min_length, self.max_length), (shortest, longest))
        values = features.flatten().to_numpy(zero_copy_only=False)  # null elements: NaN
        bad_values = ~np.isfinite(values)
        if bad_values.any():
            parents = pc.list_parent_indices(features).to_numpy(zero_copy_only=False)
            self.bad_rows += len(np.unique(parents[bad_values]))
        w = None
        if has_weights:
            w = batch.column("w").to_numpy(zero_copy_only=False).astype(np.float64)
            finite = np.isfinite(w)
            self.bad_weights += int(np.count_nonzero(~finite))
            self.negative_weights += int(np.count_nonzero(w < 0))
            self.weight_sum += float(w[finite].sum())
        if features.null_count or shortest != longest:
            return None
        return values.reshape(batch.num_rows, shortest), w

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


def _length_range(*ranges: tuple[int, int]) -> tuple[int, int]:
    # The (shortest, longest) over ranges whose rows were seen; (-1, -1) marks none.
    seen = [(low, high) for low, high in ranges if low >= 0]
    return min((low for low, _ in seen), default=-1), max((high for _, high in seen), default=-1)


def input_counts(checks: RowChecks, features_col: str, weight_col: str | None) -> InputCounts:
    """Raise on bad input; otherwise the counts the fit uses.

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
    if checks.bad_rows:
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
    return InputCounts(rows, checks.max_length, weight_sum)
