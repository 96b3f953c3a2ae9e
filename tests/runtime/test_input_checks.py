"""Counting bad rows on Arrow batches (no Spark): what the writing pass reports."""

from __future__ import annotations

import math
from dataclasses import astuple

import numpy as np
import pyarrow as pa
import pytest

from spark_gmm.errors import InvalidInputError
from spark_gmm.runtime.input_checks import FeatureRows, RowChecks, input_counts

NAN, INF = math.nan, math.inf


def _batch(rows: list, weights: list | None = None) -> pa.RecordBatch:
    columns = {"x": pa.array(rows, type=pa.list_(pa.float64()))}
    columns["w"] = pa.array(weights if weights is not None else [None] * len(rows),
                            type=pa.float64())
    return pa.RecordBatch.from_pydict(columns)


def _count(batches: list[pa.RecordBatch], has_weights: bool = False
           ) -> tuple[RowChecks, list]:
    checks = RowChecks()
    blocks = list(checks.blocks(batches, has_weights))
    return checks, blocks


def test_clean_batches_become_blocks_and_counts() -> None:
    first = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    second = [[7.0, 8.0]]
    checks, blocks = _count([_batch(first, [1.0, 2.0, 0.5]), _batch(second, [0.0])], True)
    assert (checks.rows, checks.null_rows, checks.bad_rows) == (4, 0, 0)
    assert (checks.min_length, checks.max_length) == (2, 2)
    assert (checks.bad_weights, checks.negative_weights, checks.weight_sum) == (0, 0, 3.5)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in blocks]), first + second)
    np.testing.assert_array_equal(np.concatenate([w for _, w in blocks]), [1.0, 2.0, 0.5, 0.0])
    assert input_counts(checks, "features", "w").n_features == 2


def test_every_kind_of_bad_row_is_counted_once() -> None:
    rows = [[1.0, NAN], [INF, -INF], None, [None, 1.0], [1.0, 2.0, 3.0], [4.0, 5.0]]
    checks, _ = _count([_batch(rows, [1.0, NAN, None, -1.0, -INF, 2.0])], True)
    assert checks.rows == 6
    assert checks.null_rows == 1
    assert checks.bad_rows == 3  # NaN; ±Inf (one row, two bad values); a null element
    assert (checks.min_length, checks.max_length) == (2, 3)
    assert checks.bad_weights == 3  # NaN, null, -Inf
    assert checks.negative_weights == 2  # -1, -Inf


def test_after_a_bad_batch_nothing_is_yielded_but_everything_is_counted() -> None:
    good, mixed, late = [[1.0, 2.0]], [[1.0], [1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0]]
    checks, blocks = _count([_batch(good), _batch(mixed), _batch(late)])
    assert checks.rows == 5 and (checks.min_length, checks.max_length) == (1, 2)
    assert [b[0].tolist() for b in blocks] == [good]
    # a later batch of another length than the first also stops the yield
    checks, blocks = _count([_batch([[1.0, 2.0]]), _batch([[1.0, 2.0, 3.0]])])
    assert len(blocks) == 1 and (checks.min_length, checks.max_length) == (2, 3)


def test_merge_is_the_count_of_the_whole() -> None:
    batches = [_batch([[1.0, NAN]], [1.0]), _batch([None, [2.0, 3.0, 4.0]], [2.0, -1.0]),
               _batch([[5.0, 6.0]], [NAN])]
    whole, _ = _count(batches, True)
    parts = [_count([b], True)[0] for b in batches]
    merged = (parts[0].merge(parts[1])).merge(parts[2])
    assert astuple(merged)[:-1] == astuple(whole)[:-1]
    assert merged.weight_sum == pytest.approx(whole.weight_sum)
    assert parts[0].merge(parts[1].merge(parts[2])) == merged
    assert RowChecks().merge(whole) == whole  # neutral element, lengths included


@pytest.mark.parametrize(("checks", "pattern"), [
    (RowChecks(), "empty"),
    (RowChecks(rows=5, null_rows=2, min_length=3, max_length=3), r"null in 2 of 5 rows"),
    (RowChecks(rows=5, bad_rows=1, min_length=3, max_length=3),
     r"NaN, infinite or null values in 1 of 5 rows"),
    (RowChecks(rows=5, min_length=2, max_length=3), r"different or zero lengths \(from 2 to 3\)"),
    (RowChecks(rows=5, min_length=0, max_length=0), "different or zero lengths"),
    (RowChecks(rows=5, min_length=3, max_length=3, negative_weights=1),
     r"'w' has 0 null/NaN/infinite and 1 negative values in 5 rows"),
    (RowChecks(rows=5, min_length=3, max_length=3), r"'w' sums to 0.0"),
])
def test_errors_name_the_column_and_the_count(checks, pattern) -> None:
    with pytest.raises(InvalidInputError, match=pattern):
        input_counts(checks, "features", "w")


HOSTILE = [[1.0, 2.0], [1.0, NAN], None, [None, 1.0], [1.0, 2.0, 3.0], [INF, 4.0], [],
           [5.0, -INF], [6.0, 7.0]]


def test_feature_rows_reasons_and_selected_rows_on_a_sliced_batch() -> None:
    # A slice of a larger array (offsets not starting at 0) whose null slot has values under
    # it (Arrow allows that): the selected rows must still be the right ones.
    rows_with_padding = [[9.0, 9.0], *HOSTILE]
    lengths = [2 if r is None else len(r) for r in rows_with_padding]
    values = [v for r in rows_with_padding for v in (r if r is not None else [8.0, 8.0])]
    padded = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(lengths)]), type=pa.int32()),
        pa.array(values, type=pa.float64()),
        mask=pa.array([r is None for r in rows_with_padding])).slice(1)
    rows = FeatureRows.of(padded)
    assert rows.reasons(2) == [None, "non_finite", "null", "non_finite", "wrong_length",
                               "non_finite", "wrong_length", "non_finite", None]
    valid = rows.valid(2)
    np.testing.assert_array_equal(rows.rows(valid, 2), [[1.0, 2.0], [6.0, 7.0]])
    assert rows.length_range() == (0, 3)
    chunked = FeatureRows.of(pa.chunked_array([padded.slice(0, 4), padded.slice(4)]))
    assert chunked.reasons(2) == rows.reasons(2)
    checks, blocks = _count([pa.RecordBatch.from_arrays(
        [padded, pa.array([None] * len(padded), type=pa.float64())], ["x", "w"])])
    assert (checks.rows, checks.null_rows, checks.bad_rows) == (9, 1, 4)
    assert (checks.min_length, checks.max_length) == (0, 3) and blocks == []


@pytest.mark.parametrize("n_features", [2, None])
def test_the_sql_rule_gives_the_arrow_rule_s_reasons(spark, n_features) -> None:
    from pyspark.sql import functions as F

    from spark_gmm.runtime.input_checks import invalid_reason_column

    df = spark.createDataFrame([(i, r) for i, r in enumerate(HOSTILE)],
                               "id int, x array<double>").repartition(3)
    sql = {r.id: r.reason for r in df.select(
        "id", invalid_reason_column(F.col("x"), n_features).alias("reason")).collect()}
    arrow = FeatureRows.of(pa.array(HOSTILE, type=pa.list_(pa.float64())))
    expected = arrow.reasons(2)
    if n_features is None:  # without a length to hold them to, only empty rows are wrong
        expected = [None if reason == "wrong_length" and len(HOSTILE[i]) else reason
                    for i, reason in enumerate(expected)]
    assert [sql[i] for i in range(len(HOSTILE))] == expected


def test_marginalize_counts_missing_features_and_keeps_inf_and_empty_rows_invalid() -> None:
    # HOSTILE plus rows missing one or both features (NaN, null element, both).
    rows = [*HOSTILE, [NAN, None], [None, 3.0], [NAN, INF]]
    arrow = FeatureRows.of(pa.array(rows, type=pa.list_(pa.float64())))
    assert arrow.reasons(2, marginalize=True) == [
        None, None, "null", None, "wrong_length", "non_finite", "wrong_length", "non_finite",
        None, "non_finite", None, "non_finite"]
    checks, _ = _count([_batch([r for r in rows if r is not None])])
    assert (checks.infinite_rows, checks.unobserved_rows) == (3, 1)
    assert checks.incomplete_by_missing == [3]  # [1, NaN], [None, 1], [None, 3]
    with pytest.raises(InvalidInputError, match=r"no observed value in 4 of 11 rows \(3 with"):
        input_counts(checks, "features", None, marginalize=True)
    clean, _ = _count([_batch([[1.0, NAN], [NAN, 2.0], [3.0, 4.0]]),
                       _batch([[5.0, 6.0, NAN]])])
    assert clean.incomplete_by_missing == [3]
    wide = RowChecks(rows=4, bad_rows=2, min_length=3, max_length=3,
                     incomplete_by_missing=[1, 1])
    assert input_counts(wide, "f", None, marginalize=True).incomplete_by_missing == (1, 1)
    assert wide.merge(clean).incomplete_by_missing == [4, 1]
    with pytest.raises(InvalidInputError, match="NaN, infinite or null values in 2 of 4"):
        input_counts(wide, "f", None)


@pytest.mark.parametrize("n_features", [2, None])
def test_the_sql_rule_under_marginalize_gives_the_arrow_rule_s_reasons(spark, n_features
                                                                         ) -> None:
    from pyspark.sql import functions as F

    from spark_gmm.runtime.input_checks import invalid_reason_column

    rows = [*HOSTILE, [NAN, None], [None, 3.0], [NAN, INF]]
    df = spark.createDataFrame([(i, r) for i, r in enumerate(rows)], "id int, x array<double>")
    sql = {r.id: r.reason for r in df.select(
        "id", invalid_reason_column(F.col("x"), n_features, True).alias("reason")).collect()}
    expected = FeatureRows.of(pa.array(rows, type=pa.list_(pa.float64()))).reasons(2, True)
    if n_features is None:
        expected = [None if reason == "wrong_length" and len(rows[i]) else reason
                    for i, reason in enumerate(expected)]
    assert [sql[i] for i in range(len(rows))] == expected
