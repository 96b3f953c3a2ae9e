"""What both jobs do to rows: read and check them, label them with a model, write them.

Every row read is accounted for: labelled (a null prediction when it was invalid and the
policy is ``skip``) or quarantined, and the jobs check that on what they wrote.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..errors import InvalidInputError
from ..runtime.progress import phase
from .config import JobConfig
from .estimators import FittedModel
from .io import atomic_publish, input_error, read_input
from .prepare import (
    FEATURES,
    REASON,
    FeatureSchema,
    RowCounts,
    apply_standardisation,
    count_rows,
    invalid_rows_error,
    no_rows_left_error,
    text_columns_error,
    with_features,
)

logger = logging.getLogger(__name__)

_PROBABILITY = "__spark_gmm_probability"
LOG_LIKELIHOOD = "log_likelihood"
_IMPUTED = "__spark_gmm_imputed"


def prepare_rows(spark: SparkSession, config: JobConfig, n_features: int | None = None,
                 need_valid_rows: bool = False, rows: DataFrame | None = None
                 ) -> tuple[DataFrame, list[str], RowCounts]:
    """The input with its features and invalid reason, its own columns, and the counts.

    ``rows`` are the rows to prepare when they are not the configured input itself (a
    micro-batch of it, in the score job's streaming mode).

    Raises
    ------
    InvalidInputError
        No rows, duplicated columns, a feature column that is not numeric, invalid rows
        under the ``error`` policy, or (with ``need_valid_rows``) no valid row left by the
        ``skip`` or ``quarantine`` policy.
    """
    raw = read_input(spark, config.input) if rows is None else rows
    if len(set(raw.columns)) != len(raw.columns):
        raise InvalidInputError(f"the input has duplicated column names: {raw.columns}; "
                                "rename them so each column is unique")
    prepared, reasons = with_features(raw, config.input, n_features)
    try:  # the first pass over the rows: where a file Spark cannot read shows
        counts = count_rows(prepared, reasons,
                            config.input.missing_features == "marginalize")
    except Exception as error:
        mapped = input_error(error, config.input)
        if mapped is None:
            raise
        raise mapped from error
    if counts.rows == 0:
        raise InvalidInputError(f"the input {config.input.path or config.input.table!r} has "
                                "no rows")
    text_error = text_columns_error(raw, config.input, counts)
    if text_error is not None:
        raise text_error
    if counts.invalid and config.preprocess.invalid_rows == "error":
        raise invalid_rows_error(counts)
    if need_valid_rows and counts.invalid == counts.rows:
        raise no_rows_left_error(counts, config.preprocess.invalid_rows)
    return prepared, raw.columns, counts


def valid_rows(prepared: DataFrame) -> DataFrame:
    return prepared.where(F.col(REASON).isNull())


def rows_to_label(config: JobConfig, prepared: DataFrame) -> DataFrame:
    """Quarantined rows go to their own output; every other row is labelled."""
    return valid_rows(prepared) if config.preprocess.invalid_rows == "quarantine" else prepared


def scoring_model(model: FittedModel) -> FittedModel:
    """``model`` reading the prepared features and adding the columns the jobs write (for a
    Bayesian model the log-likelihood column is scikit-learn's ``score_samples``)."""
    return (model.copy().setFeaturesCol(FEATURES).setPredictionCol("prediction")
            .setProbabilityCol(_PROBABILITY).setLogLikelihoodCol(LOG_LIKELIHOOD))


def label(model: FittedModel, frame: DataFrame, input_columns: list[str],
          model_id: str, threshold: float | None, imputed_column: str = "",
          schema: FeatureSchema | None = None) -> DataFrame:
    """The input columns plus prediction, probability, log_likelihood, model_id (and
    is_outlier with a threshold, and ``imputed_column``: the features with missing entries
    at E[x_m | x_o], in the units of ``schema``'s input); ``model`` from
    :func:`scoring_model`."""
    if imputed_column:
        model = model.copy().setImputedCol(_IMPUTED)  # type: ignore[union-attr]
    scored = model.transform(frame)
    imputed = []
    if imputed_column:
        values = vector_to_array(_IMPUTED)
        if schema is not None and schema.mean:  # back to the features' own units
            mean, scale = F.array(*map(F.lit, schema.mean)), F.array(*map(F.lit, schema.scale))
            values = F.transform(values, lambda v, i: v * scale[i] + mean[i])
        imputed = [F.when(F.col(_IMPUTED).isNotNull(), values).alias(imputed_column)]
    labelled = scored.select(
        *[F.col(f"`{c}`") for c in input_columns],
        F.col("prediction"),
        F.when(F.col(_PROBABILITY).isNotNull(), vector_to_array(_PROBABILITY))
        .alias("probability"),
        F.col(LOG_LIKELIHOOD),
        F.lit(model_id).alias("model_id"),
        *imputed,
    )
    if threshold is not None:
        ll = F.col(LOG_LIKELIHOOD)
        labelled = labelled.withColumn("is_outlier", F.when(ll.isNotNull(), ll < threshold))
    return labelled


def write_outputs(spark: SparkSession, config: JobConfig, prepared: DataFrame,
                  labelled: DataFrame, counts: RowCounts, noise: bool = False
                  ) -> dict[str, int]:
    """Publish the labelled rows (and the quarantined ones); check rows out = rows in. With
    ``noise`` (a model with a noise component) also count the rows labelled −1.

    Raises
    ------
    RuntimeError
        The rows written do not add up to the rows read.
    """
    quarantined = 0
    if config.preprocess.invalid_rows == "quarantine" and counts.invalid:
        bad = prepared.where(F.col(REASON).isNotNull()).drop(FEATURES)
        atomic_publish(spark, config.preprocess.quarantine_path,
                       lambda path: bad.write.parquet(path), "preprocess.quarantine_path")
        quarantined = spark.read.parquet(config.preprocess.quarantine_path).count()

    def write(path: str) -> None:
        writer = labelled.write
        if config.output.partition_by:
            writer = writer.partitionBy(*config.output.partition_by)
        writer.parquet(path)

    atomic_publish(spark, config.output.path, write, "output.path")
    written = spark.read.parquet(config.output.path)
    labelled_rows = written.count()
    null_predictions = written.where(F.col("prediction").isNull()).count()
    noise_rows = written.where(F.col("prediction") == -1).count() if noise else None
    if labelled_rows + quarantined != counts.rows:
        raise RuntimeError(
            f"row accounting failed: {counts.rows} read, {labelled_rows} labelled, "
            f"{quarantined} quarantined"
        )
    return {"rows_read": counts.rows, "rows_labelled": labelled_rows,
            "rows_quarantined": quarantined, "rows_skipped": counts.invalid - quarantined,
            "rows_with_null_prediction": null_predictions} | (
                {} if noise_rows is None else {"rows_labelled_noise": noise_rows})


def score_rows(spark: SparkSession, config: JobConfig, model: FittedModel,
               artifact: dict[str, Any], schema: FeatureSchema,
               rows: DataFrame | None = None) -> tuple[DataFrame, RowCounts, dict[str, int]]:
    """The score job's work on its rows (the configured input, or ``rows``): check them
    against the artifact's features, standardise them as the training rows were, label and
    publish them. Returns the prepared rows (for the drift checks), their counts and what
    :func:`write_outputs` wrote.

    Raises
    ------
    InvalidInputError
        As :func:`prepare_rows`, or rows with another number of features than the model's.
    """
    source = config.input.path or config.input.table
    with phase(f"reading and checking {source}", logger):
        prepared, input_columns, counts = prepare_rows(spark, config, schema.n_features,
                                                       rows=rows)
    if counts.n_features not in (0, schema.n_features):
        raise InvalidInputError(f"the input has {counts.n_features} features; the model "
                                f"expects {schema.n_features}")
    prepared = apply_standardisation(prepared, schema.mean, schema.scale)
    labelled = label(scoring_model(model), rows_to_label(config, prepared), input_columns,
                     artifact["model_id"], artifact.get("outlier_log_likelihood_threshold"),
                     config.output.imputed_column, schema)
    with phase(f"labelling {counts.rows} rows into {config.output.path}", logger):
        written = write_outputs(spark, config, prepared, labelled, counts,
                                getattr(model, "noiseLogVolume", None) is not None)
    return prepared, counts, written
