"""The fit and score jobs: config in, labelled Parquet and a model artifact out.

A model artifact is a directory::

    model/             GaussianMixtureModel.save (JSON metadata + Parquet arrays)
    features.json      feature schema, standardisation, outlier threshold, model id
    diagnostics.json   config, version, history, timings, sizes, BIC/AIC, row counts
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Any

import numpy as np
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import __version__
from ..data import InvalidInputError
from ..estimator import GaussianMixture
from ..model import GaussianMixtureModel
from .config import JobConfig
from .io import atomic_publish, read_input, read_json, write_json
from .prepare import (
    FEATURES,
    REASON,
    FeatureSchema,
    RowCounts,
    apply_standardisation,
    count_rows,
    invalid_rows_error,
    standardisation,
    with_features,
)

logger = logging.getLogger(__name__)
_PROBABILITY = "__spark_gmm_probability"
_LOG_LIKELIHOOD = "log_likelihood"


def model_id_of(model: GaussianMixtureModel) -> str:
    """A stable id: the hash of the fitted parameters (same model, same id)."""
    digest = hashlib.sha256()
    for array in (model.weights, model.means, model.covariances):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return "gmm-" + digest.hexdigest()[:12]


def _in_original_units(model: GaussianMixtureModel, schema: FeatureSchema) -> dict[str, Any]:
    if not schema.mean:
        return {"means": model.means.tolist(), "covariances": model.covariances.tolist()}
    scale, mean = np.array(schema.scale), np.array(schema.mean)
    cov = model.covariances
    scaled_cov = {
        "full": lambda: cov * scale[None, :, None] * scale[None, None, :],
        "tied": lambda: cov * scale[:, None] * scale[None, :],
        "diag": lambda: cov * scale**2,
        "spherical": lambda: cov[:, None] * scale**2,  # per-feature variances
    }[model.getCovarianceType()]()
    return {"means": (model.means * scale + mean).tolist(), "covariances": scaled_cov.tolist()}


def _label(model: GaussianMixtureModel, frame: DataFrame, input_columns: list[str],
           model_id: str, threshold: float | None) -> DataFrame:
    scored = model.transform(frame)
    labelled = scored.select(
        *[F.col(f"`{c}`") for c in input_columns],
        F.col("prediction"),
        F.when(F.col(_PROBABILITY).isNotNull(), vector_to_array(_PROBABILITY))
        .alias("probability"),
        F.col(_LOG_LIKELIHOOD),
        F.lit(model_id).alias("model_id"),
    )
    if threshold is not None:
        ll = F.col(_LOG_LIKELIHOOD)
        labelled = labelled.withColumn("is_outlier", F.when(ll.isNotNull(), ll < threshold))
    return labelled


def _scoring_model(model: GaussianMixtureModel) -> GaussianMixtureModel:
    return (model.copy().setFeaturesCol(FEATURES).setPredictionCol("prediction")
            .setProbabilityCol(_PROBABILITY).setLogLikelihoodCol(_LOG_LIKELIHOOD))


def _write_outputs(spark: SparkSession, config: JobConfig, prepared: DataFrame,
                   labelled: DataFrame, counts: RowCounts) -> dict[str, int]:
    policy = config.preprocess.invalid_rows
    quarantined = 0
    if policy == "quarantine" and counts.invalid:
        bad = prepared.where(F.col(REASON).isNotNull()).drop(FEATURES)
        atomic_publish(spark, config.preprocess.quarantine_path,
                       lambda path: bad.write.parquet(path))
        quarantined = spark.read.parquet(config.preprocess.quarantine_path).count()

    def write(path: str) -> None:
        writer = labelled.write
        if config.output.partition_by:
            writer = writer.partitionBy(*config.output.partition_by)
        writer.parquet(path)

    atomic_publish(spark, config.output.path, write)
    written = spark.read.parquet(config.output.path)
    labelled_rows = written.count()
    null_predictions = written.where(F.col("prediction").isNull()).count()
    if labelled_rows + quarantined != counts.rows:
        raise RuntimeError(
            f"row accounting failed: {counts.rows} read, {labelled_rows} labelled, "
            f"{quarantined} quarantined"
        )
    return {"rows_read": counts.rows, "rows_labelled": labelled_rows,
            "rows_quarantined": quarantined, "rows_skipped": counts.invalid - quarantined,
            "rows_with_null_prediction": null_predictions}


def _prepare(spark: SparkSession, config: JobConfig, n_features: int | None = None
             ) -> tuple[DataFrame, list[str], RowCounts]:
    raw = read_input(spark, config.input)
    if len(set(raw.columns)) != len(raw.columns):
        raise InvalidInputError(f"the input has duplicated column names: {raw.columns}; "
                                "rename them so each column is unique")
    prepared, reasons = with_features(raw, config.input, n_features)
    counts = count_rows(prepared, reasons)
    if counts.rows == 0:
        raise InvalidInputError(f"the input {config.input.path or config.input.table!r} has "
                                "no rows")
    if counts.invalid and config.preprocess.invalid_rows == "error":
        raise invalid_rows_error(counts)
    return prepared, raw.columns, counts


def run_fit(spark: SparkSession, config: JobConfig) -> dict[str, Any]:
    """Fit a mixture as configured, write the labelled output and the model artifact.

    Returns the run report (also stored as the artifact's ``diagnostics.json``).
    """
    started = time.perf_counter()
    if not config.model.path or not config.output.path:
        raise InvalidInputError("model.path and output.path must be set for a fit job")
    prepared, input_columns, counts = _prepare(spark, config)
    valid = prepared.where(F.col(REASON).isNull())
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    if config.preprocess.standardize:
        mean, scale = standardisation(valid)
        prepared = apply_standardisation(prepared, mean, scale)
        valid = prepared.where(F.col(REASON).isNull())
    schema = FeatureSchema(config.input.features, config.input.features_column,
                           counts.n_features, mean, scale)
    m = config.model
    estimator = GaussianMixture(
        k=m.k, covarianceType=m.covariance_type, maxIter=m.max_iter, tol=m.tol,
        regCovar=m.reg_covar, initMode=m.init_mode, nInit=m.n_init, seed=m.seed,
        aggregationDepth=m.aggregation_depth, featuresCol=FEATURES,
        weightCol=config.input.weight_column or None,
        checkpointPath=config.checkpoint.path or None,
    )
    valid = valid.persist()
    try:
        model = estimator.fit(valid)
        model_id = config.output.model_id or model_id_of(model)
        scoring = _scoring_model(model)
        threshold = None
        if config.output.outlier_quantile > 0:
            threshold = float(scoring.transform(valid).approxQuantile(
                _LOG_LIKELIHOOD, [config.output.outlier_quantile], 1e-4)[0])
    finally:
        valid.unpersist()
    to_label = prepared if config.preprocess.invalid_rows != "quarantine" else (
        prepared.where(F.col(REASON).isNull()))
    labelled = _label(scoring, to_label, input_columns, model_id, threshold)
    rows = _write_outputs(spark, config, prepared, labelled, counts)
    summary = model.summary
    report = {
        "spark_gmm_version": __version__, "model_id": model_id, "config": config.to_dict(),
        "feature_schema": schema.to_dict(), "outlier_log_likelihood_threshold": threshold,
        "log_likelihood": summary.logLikelihood,
        "log_likelihood_history": summary.logLikelihoodHistory,
        "seconds_per_iteration": summary.iterationSeconds, "num_iter": summary.numIter,
        "converged": summary.converged, "cluster_sizes": summary.clusterSizes,
        "bic": summary.bic, "aic": summary.aic, "weights": model.weights.tolist(),
        "original_units": _in_original_units(model, schema),
        "invalid_rows": {"total": counts.invalid, "by_reason": counts.by_reason,
                         "by_column": counts.by_column},
        **rows,
    }

    def write_artifact(path: str) -> None:
        model.save(os.path.join(path, "model"))
        write_json(spark, os.path.join(path, "features.json"), {
            **schema.to_dict(), "model_id": model_id,
            "outlier_log_likelihood_threshold": threshold})
        write_json(spark, os.path.join(path, "diagnostics.json"), report)

    atomic_publish(spark, config.model.path, write_artifact)
    if config.checkpoint.path and os.path.exists(config.checkpoint.path):
        os.remove(config.checkpoint.path)  # the fit is complete; a rerun starts afresh
    report["seconds_total"] = time.perf_counter() - started
    return report


def run_score(spark: SparkSession, config: JobConfig) -> dict[str, Any]:
    """Label new rows with a saved model artifact (``model.path``)."""
    if not config.model.path or not config.output.path:
        raise InvalidInputError("model.path and output.path must be set for a score job")
    try:
        artifact = read_json(spark, os.path.join(config.model.path, "features.json"))
        schema = FeatureSchema.from_dict(artifact)
    except Exception as error:
        raise InvalidInputError(f"cannot read a model artifact at {config.model.path!r} "
                                f"({type(error).__name__}); run the fit job first") from error
    if (schema.columns, schema.vector_column) != (config.input.features,
                                                  config.input.features_column):
        raise InvalidInputError(
            f"feature schema mismatch: the model was fitted on "
            f"{list(schema.columns) or schema.vector_column!r} but the config names "
            f"{list(config.input.features) or config.input.features_column!r}; score with "
            "the same features, in the same order"
        )
    model = GaussianMixtureModel.load(os.path.join(config.model.path, "model"))
    prepared, input_columns, counts = _prepare(spark, config, schema.n_features)
    if counts.n_features not in (0, schema.n_features):
        raise InvalidInputError(f"the input has {counts.n_features} features; the model "
                                f"expects {schema.n_features}")
    prepared = apply_standardisation(prepared, schema.mean, schema.scale)
    to_label = prepared if config.preprocess.invalid_rows != "quarantine" else (
        prepared.where(F.col(REASON).isNull()))
    labelled = _label(_scoring_model(model), to_label, input_columns, artifact["model_id"],
                      artifact.get("outlier_log_likelihood_threshold"))
    rows = _write_outputs(spark, config, prepared, labelled, counts)
    return {"model_id": artifact["model_id"], "invalid_rows": {
        "total": counts.invalid, "by_reason": counts.by_reason}, **rows}
