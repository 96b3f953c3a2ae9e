"""Features for the jobs: one array column, a reason for every invalid row, standardisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.ml.functions import array_to_vector
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType, StringType

from ..errors import InvalidInputError
from ..runtime.ingest import features_array
from ..runtime.input_checks import invalid_reason_column
from .config import InputConfig

FEATURES = "__spark_gmm_x"
REASON = "invalid_reason"
_INF = float("inf")


@dataclass(frozen=True)
class FeatureSchema:
    """What a model was fitted on; the score job refuses input that does not match."""

    columns: tuple[str, ...]
    vector_column: str
    n_features: int
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "vector_column": self.vector_column,
                "n_features": self.n_features, "standardize_mean": list(self.mean),
                "standardize_scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSchema:
        return cls(tuple(d["columns"]), d["vector_column"], int(d["n_features"]),
                   tuple(d["standardize_mean"]), tuple(d["standardize_scale"]))


def _value_reason(v: Column) -> Column:
    return (F.when(v.isNull(), "null").when(F.isnan(v), "nan")
            .when(F.abs(v) == F.lit(_INF), "infinite"))


def _column_value(df: DataFrame, name: str, input_format: str) -> tuple[Column, Column]:
    """(value as double, reason or null) for one named feature column.

    Raises
    ------
    InvalidInputError
        The column is missing, or not numeric by type (a CSV column of text is read as a
        string column, and its values that parse as numbers count: see
        :func:`text_columns_error`).
    """
    if name not in df.columns:
        raise InvalidInputError(f"feature column {name!r} not found; available columns: "
                                f"{', '.join(df.columns)}")
    data_type = df.schema[name].dataType
    column = F.col(f"`{name}`")
    if isinstance(data_type, NumericType):
        value = column.cast("double")
        return value, _value_reason(value)
    if isinstance(data_type, StringType) and input_format == "csv":
        # CSV columns with stray text arrive as strings: unparsable values are invalid rows.
        value = column.try_cast("double")
        return value, (F.when(column.isNotNull() & value.isNull(), "non_numeric")
                       .otherwise(_value_reason(value)))
    if isinstance(data_type, StringType):
        raise _not_numeric(name, "a string column")
    raise _not_numeric(name, f"a column of type {data_type.simpleString()}")


def _not_numeric(name: str, what: str) -> InvalidInputError:
    return InvalidInputError(f"column {name!r} is {what}: remove it from input.features or "
                             "encode it first (features are numeric)")


def text_columns_error(df: DataFrame, config: InputConfig, counts: RowCounts
                       ) -> InvalidInputError | None:
    """The error for a CSV string column among ``input.features`` in which no row holds a
    number (a column of text, such as a label), or None."""
    for name in config.features:
        if (isinstance(df.schema[name].dataType, StringType)
                and counts.by_column.get(name) == counts.rows):
            return _not_numeric(name, f"a string column (no number in any of its "
                                      f"{counts.rows} rows)")
    return None


def with_features(df: DataFrame, config: InputConfig, n_features: int | None = None
                  ) -> tuple[DataFrame, dict[str, Column]]:
    """Add the features array and the per-row invalid reason (null when valid).

    Returns the frame and, per feature column, the expression of its reason (for counts).
    With ``input.missing_features = "marginalize"`` a null or NaN feature is missing (NaN in
    the array), not invalid, unless every feature of the row is.
    """
    marginalize = config.missing_features == "marginalize"
    if config.features:
        parts = {name: _column_value(df, name, config.format) for name in config.features}
        features = F.array(*[value for value, _ in parts.values()])
        reasons = {name: reason for name, (_, reason) in parts.items()}
        if marginalize:
            nothing = F.lit(True)
            for value, _ in parts.values():
                nothing = nothing & (value.isNull() | F.isnan(value))
            reasons = {name: F.when(r.isin("null", "nan") & ~nothing, F.lit(None)).otherwise(r)
                       for name, r in reasons.items()}
    else:
        name = config.features_column
        features = features_array(df, name)
        reasons = {name: invalid_reason_column(features, n_features, marginalize)}
    if marginalize:
        features = F.transform(features, lambda v: F.coalesce(v, F.lit(float("nan"))))
    reason = F.coalesce(*reasons.values()) if len(reasons) > 1 else next(iter(reasons.values()))
    return df.withColumn(FEATURES, features).withColumn(REASON, reason), reasons


@dataclass(frozen=True)
class RowCounts:
    rows: int
    invalid: int
    by_reason: dict[str, int]
    by_column: dict[str, int]
    n_features: int
    # Valid rows missing i features, i ≥ 1 (input.missing_features = "marginalize").
    incomplete_by_missing: dict[int, int] = field(default_factory=dict)


def count_rows(prepared: DataFrame, reasons: dict[str, Column], marginalize: bool = False
               ) -> RowCounts:
    """Rows, invalid rows by reason and by column, and the feature count: one Spark job
    (and with ``marginalize`` one more, the valid rows by their number of missing
    features)."""
    reason = F.col(REASON)
    aggregates = [F.count(F.lit(1)).alias("rows"),
                  F.sum(reason.isNotNull().cast("long")).alias("invalid"),
                  F.max(F.when(reason.isNull(), F.size(FEATURES))).alias("n_features"),
                  F.collect_set(reason).alias("reasons")]
    aggregates += [F.sum(r.isNotNull().cast("long")).alias(f"c{i}")
                   for i, r in enumerate(reasons.values())]
    row = prepared.agg(*aggregates).first()
    assert row is not None
    by_reason: dict[str, int] = {}
    if row["invalid"]:
        by_reason = {r[REASON]: int(r["count"]) for r in
                     prepared.where(reason.isNotNull()).groupBy(REASON).count().collect()}
    return RowCounts(
        rows=int(row["rows"]), invalid=int(row["invalid"] or 0), by_reason=by_reason,
        by_column={name: int(row[f"c{i}"] or 0) for i, name in enumerate(reasons)},
        n_features=int(row["n_features"] or 0),
        incomplete_by_missing=_incomplete_by_missing(prepared) if marginalize else {},
    )


def incomplete_share(counts: RowCounts) -> float:
    """The share of the valid rows with a missing feature (0 when there is no valid row)."""
    valid = counts.rows - counts.invalid
    return sum(counts.incomplete_by_missing.values()) / valid if valid else 0.0


def _incomplete_by_missing(prepared: DataFrame) -> dict[int, int]:
    missing = F.size(F.filter(FEATURES, lambda v: F.isnan(v)))
    counted = (prepared.where(F.col(REASON).isNull()).select(missing.alias("m"))
               .where(F.col("m") > 0).groupBy("m").count().collect())
    return {int(r["m"]): int(r["count"]) for r in sorted(counted, key=lambda r: r["m"])}


def _by_column_and_reason(counts: RowCounts) -> str:
    columns = ", ".join(f"{name!r}: {n}" for name, n in counts.by_column.items() if n)
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted(counts.by_reason.items()))
    return f"by column {columns}; by reason {reasons}"


def invalid_rows_error(counts: RowCounts) -> InvalidInputError:
    """The error for invalid rows under ``preprocess.invalid_rows = 'error'``."""
    if counts.invalid == counts.rows:
        return InvalidInputError(
            f"all {counts.rows} rows have invalid features ({_by_column_and_reason(counts)}); "
            "fix the data or input.features (skipping them would leave no rows)")
    return InvalidInputError(
        f"{counts.invalid} of {counts.rows} rows have invalid features "
        f"({_by_column_and_reason(counts)}). Fix the data, or set preprocess.invalid_rows = "
        "'skip' (not fitted, labelled null) or 'quarantine' (written to "
        "preprocess.quarantine_path)"
    )


def no_rows_left_error(counts: RowCounts, policy: str) -> InvalidInputError:
    """The error for a ``skip`` or ``quarantine`` policy that leaves no valid row."""
    return InvalidInputError(
        f"preprocess.invalid_rows = {policy!r} leaves no rows: all {counts.rows} rows have "
        f"invalid features ({_by_column_and_reason(counts)}); fix the data or input.features")


def standardisation(valid: DataFrame, observed_of: int = 0
                    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and (sample) standard deviation over the valid rows, in one pass;
    with ``observed_of`` (the feature count, when features may be missing) over each
    feature's observed (non-NaN) values.

    A constant feature gets scale 1 so that it stays constant instead of dividing by zero.
    """
    if observed_of:
        x = F.col(FEATURES)
        values = [F.when(~F.isnan(x[i]), x[i]) for i in range(observed_of)]
        row = valid.agg(*[F.avg(v) for v in values], *[F.stddev_samp(v) for v in values]
                        ).first()
        assert row is not None
        stats = [float("nan") if v is None else float(v) for v in row]
        return (tuple(stats[:observed_of]),
                tuple(s if s > 0 else 1.0 for s in stats[observed_of:]))
    summary = valid.select(Summarizer.metrics("mean", "std").summary(
        array_to_vector(FEATURES)).alias("s")).first()
    assert summary is not None
    mean = tuple(float(v) for v in summary["s"]["mean"])
    scale = tuple(float(v) if v > 0 else 1.0 for v in summary["s"]["std"])
    return mean, scale


def apply_standardisation(df: DataFrame, mean: tuple[float, ...], scale: tuple[float, ...]
                          ) -> DataFrame:
    if not mean:
        return df
    x = F.col(FEATURES)
    scaled = [(x[i] - F.lit(m)) / F.lit(s) for i, (m, s) in enumerate(zip(mean, scale))]
    return df.withColumn(FEATURES, F.when(x.isNotNull(), F.array(*scaled)))
