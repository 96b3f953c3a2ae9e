"""The fit job: config in, labelled Parquet and a model artifact out.

A model artifact is a directory::

    model/             GaussianMixtureModel.save, or BayesianGaussianMixtureModel.save with
                       [model] estimator = "bayesian" (JSON metadata + Parquet arrays)
    features.json      feature schema, standardisation, outlier threshold, model id
    diagnostics.json   config, version, history, timings, sizes, BIC/AIC (a Bayesian
                       model: its lower bound and pruned components), row counts
    sample/            up to report.sample_rows training rows (model units), for the report
    report/            report.html, when report.enabled and no report.path is set
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession

from ..errors import InvalidInputError
from ..kernels import covariance_of
from ..ml.estimator import GaussianMixture
from ..ml.model import GaussianMixtureModel
from ..ml.selection import select_model
from ..report.page import require_matplotlib
from ..runtime.progress import phase
from ..version import __version__
from .artifact import read_warm_start
from .config import JobConfig
from .drift import training_log_likelihood
from .estimators import (
    FittedModel,
    bayesian_diagnostics,
    bayesian_estimator,
    estimator_of,
    in_model_units,
)
from .io import atomic_publish, write_json
from .prepare import (
    FEATURES,
    FeatureSchema,
    RowCounts,
    apply_standardisation,
    incomplete_share,
    standardisation,
)
from .report import SAMPLE, run_report, sample_rows, write_sample
from .rows import (
    LOG_LIKELIHOOD,
    label,
    prepare_rows,
    rows_to_label,
    scoring_model,
    valid_rows,
    write_outputs,
)

logger = logging.getLogger(__name__)


def model_id_of(model: FittedModel) -> str:
    """A stable id: the hash of the fitted parameters (same model, same id)."""
    digest = hashlib.sha256()
    for array in (model.weights, model.means, model.covariances):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return "gmm-" + digest.hexdigest()[:12]


def in_original_units(model: FittedModel, schema: FeatureSchema) -> dict[str, Any]:
    """Means and covariances before standardisation (a spherical covariance becomes its
    per-feature variances, shape (K, D): scaled per feature it is no longer spherical)."""
    if not schema.mean:
        return {"means": model.means.tolist(), "covariances": model.covariances.tolist()}
    scale, mean = np.array(schema.scale), np.array(schema.mean)
    covariances = covariance_of(model.getCovarianceType()).rescaled(model.covariances, scale)
    return {"means": (model.means * scale + mean).tolist(), "covariances": covariances.tolist()}


def prior_params(config: JobConfig, schema: FeatureSchema) -> dict[str, Any]:
    """The prior's params in the units the estimator sees: a set ``prior_mean`` and
    ``prior_scale`` are in the features' units, moved to standardised units when the job
    standardises (μ → (μ − m)/s, Λ_ij → Λ_ij/(s_i s_j)); unset ones come from the rows."""
    m = config.model
    mean, scale = in_model_units(m.prior_mean, m.prior_scale, schema)
    return dict(prior=m.prior, priorMean=mean, priorShrinkage=m.prior_shrinkage,
                priorDegreesOfFreedom=m.prior_degrees_of_freedom, priorScale=scale)


def _estimator_params(config: JobConfig, schema: FeatureSchema) -> dict[str, Any]:
    # Everything but k and the covariance type, which a model selection varies.
    m = config.model
    return dict(maxIter=m.max_iter, tol=m.tol, regCovar=m.reg_covar, initMode=m.init_mode,
                nInit=m.n_init, seed=m.seed, aggregationDepth=m.aggregation_depth,
                balanceRows=m.balance_rows, featuresCol=FEATURES,
                weightCol=config.input.weight_column or None,
                missingFeatures=config.input.missing_features,
                **prior_params(config, schema), **noise_params(config, schema))


def noise_params(config: JobConfig, schema: FeatureSchema) -> dict[str, Any]:
    """The noise component's params: a set ``noise_volume`` is in the features' units,
    divided by Π s_j when the job standardises (unset: the bounding box of the rows the
    estimator sees)."""
    m = config.model
    if not m.noise:
        return {}
    volume = m.noise_volume
    if volume is not None and schema.scale:
        volume = float(volume / np.prod(schema.scale))
    return dict(noise=True, noiseInitialWeight=m.noise_initial_weight,
                **({} if volume is None else {"noiseVolume": volume}))


def _fitted(config: JobConfig, valid: DataFrame, previous: GaussianMixtureModel | None,
            schema: FeatureSchema) -> tuple[FittedModel, dict[str, Any] | None]:
    m = config.model
    if m.estimator == "bayesian":  # one model (the config checks it), no warm start
        return bayesian_estimator(config, schema).fit(valid), None
    if not m.selects:
        estimator = GaussianMixture(k=m.k_values[0], covarianceType=m.covariance_types[0],
                                    checkpointPath=config.checkpoint.path or None,
                                    **_estimator_params(config, schema))
        if previous is not None:
            estimator.setInitialModel(previous)
        return estimator.fit(valid), None
    # Checkpoints belong to one fit; a selection runs many.
    if config.checkpoint.path:
        logger.warning("checkpoint.path is ignored when the job chooses among %d models",
                       len(m.k_values) * len(m.covariance_types))
    selection = select_model(valid, k=m.k_values, covarianceTypes=m.covariance_types,
                             criterion=m.criterion, **_estimator_params(config, schema))
    table = selection.table.astype(object).where(selection.table.notna(), None)
    return selection.best, {"criterion": m.criterion,
                            "chosen": {"k": selection.best.getK(),
                                       "covarianceType": selection.best.getCovarianceType()},
                            "table": table.to_dict(orient="records")}


def _standardised(config: JobConfig, prepared: DataFrame, counts: RowCounts,
                  previous: FeatureSchema | None) -> tuple[DataFrame, FeatureSchema]:
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    if config.preprocess.standardize:
        # A warm start keeps the previous model's units, so that its parameters still apply.
        mean, scale = ((previous.mean, previous.scale) if previous is not None
                       else standardisation(valid_rows(prepared), counts.n_features if
                                            config.input.missing_features == "marginalize"
                                            else 0))
        prepared = apply_standardisation(prepared, mean, scale)
    return prepared, FeatureSchema(config.input.features, config.input.features_column,
                                   counts.n_features, mean, scale)


@dataclass(frozen=True)
class _Fitted:
    model: FittedModel  # the best of a selection when the config lists several
    threshold: float | None  # with output.outlier_quantile: the outliers' log-density
    selection: dict[str, Any] | None  # the selection's table, None for one fit
    training: dict[str, float]  # the training rows' log-density, for the drift checks
    sample: np.ndarray  # (n, D) training rows for the report; (0, 0) when none are kept
    cluster_sizes: list[int]  # training rows per predicted component


def _fit(config: JobConfig, prepared: DataFrame, counts: RowCounts,
         previous: GaussianMixtureModel | None, schema: FeatureSchema) -> _Fitted:
    valid = valid_rows(prepared).persist()
    try:
        model, selection = _fitted(config, valid, previous, schema)
        sample = sample_rows(valid, FEATURES, counts.rows - counts.invalid,
                             config.report.sample_rows, config.model.seed)
        scored = scoring_model(model).transform(valid).select(
            "prediction", LOG_LIKELIHOOD).persist()
        try:
            training, threshold = training_log_likelihood(
                scored, config.drift.low_quantile, config.output.outlier_quantile)
            if config.input.missing_features == "marginalize":  # for the drift check
                training["incomplete_share"] = incomplete_share(counts)
            # A GaussianMixture's summary counts them in its final pass; a Bayesian one's
            # prediction is its own (scikit-learn's predict), counted here.
            sizes = (_cluster_sizes(scored, model.getK()) if estimator_of(model) == "bayesian"
                     else list(model.summary.clusterSizes))
        finally:
            scored.unpersist()
    finally:
        valid.unpersist()
    return _Fitted(model, threshold, selection, training, sample, sizes)


def _cluster_sizes(scored: DataFrame, k: int) -> list[int]:
    counts = {int(r["prediction"]): int(r["count"])
              for r in scored.groupBy("prediction").count().collect()}
    return [counts.get(j, 0) for j in range(k)]


def _model_report(fitted: _Fitted) -> dict[str, Any]:
    """What ``diagnostics.json`` holds of the fitted model and its run."""
    model = fitted.model
    run = model.runRecord if model.hasRunRecord else None
    ran = {} if run is None else {
        "seconds_per_iteration": run.iterationSeconds,
        "em_passes": {"resident_tasks": run.residentPasses, "spark_jobs": run.jobPasses},
        "fit_seconds_per_phase": run.phaseSeconds, "stored_block_bytes": run.storedBytes}
    if not isinstance(model, GaussianMixtureModel):
        return {**bayesian_diagnostics(model), "cluster_sizes": fitted.cluster_sizes, **ran}
    summary = model.summary
    return {
        "log_likelihood": summary.logLikelihood,
        "prior": model.getPrior(), "log_posterior": summary.logPosterior,
        "log_likelihood_history": summary.logLikelihoodHistory, "num_iter": summary.numIter,
        "converged": summary.converged, "cluster_sizes": summary.clusterSizes,
        "noise_weight": model.noiseWeight, "noise_size": summary.noiseSize,
        "bic": summary.bic, "aic": summary.aic, "icl": summary.icl,
        "model_selection": fitted.selection, "weights": model.weights.tolist(), **ran,
    }


def _report(config: JobConfig, fitted: _Fitted, model_id: str, schema: FeatureSchema,
            counts: RowCounts, rows: dict[str, int], seconds: dict[str, float]
            ) -> dict[str, Any]:
    model = fitted.model
    return {
        "spark_gmm_version": __version__, "model_id": model_id, "config": config.to_dict(),
        "estimator": estimator_of(model), "feature_schema": schema.to_dict(),
        "outlier_log_likelihood_threshold": fitted.threshold,
        "training_log_likelihood": fitted.training,
        **_model_report(fitted),
        "job_seconds_per_phase": seconds,
        "original_units": in_original_units(model, schema),
        "invalid_rows": {"total": counts.invalid, "by_reason": counts.by_reason,
                         "by_column": counts.by_column},
        **({"complete_rows": counts.rows - counts.invalid
            - sum(counts.incomplete_by_missing.values()),
            "incomplete_rows_by_missing_features": {
                str(n): c for n, c in counts.incomplete_by_missing.items()}}
           if config.input.missing_features == "marginalize" else {}),
        **rows,
    }


def _publish_artifact(spark: SparkSession, path: str, fitted: _Fitted, model_id: str,
                      schema: FeatureSchema, report: dict[str, Any]) -> None:
    def write(staging: str) -> None:
        fitted.model.save(os.path.join(staging, "model"))
        write_json(spark, os.path.join(staging, "features.json"), {
            **schema.to_dict(), "model_id": model_id,
            "outlier_log_likelihood_threshold": fitted.threshold,
            "training_log_likelihood": fitted.training})
        write_json(spark, os.path.join(staging, "diagnostics.json"), report)
        if fitted.sample.size:
            write_sample(spark, os.path.join(staging, SAMPLE), fitted.sample)

    atomic_publish(spark, path, write, "model.path")


def run_fit(spark: SparkSession, config: JobConfig) -> dict[str, Any]:
    """Fit a mixture as configured, write the labelled output and the model artifact.

    Returns the run report (also stored as the artifact's ``diagnostics.json``).

    Raises
    ------
    InvalidInputError
        Missing paths, invalid rows under ``error``, bad weights or parameters, or a
        ``model.warm_start`` artifact that does not match the config (naming what differs).
    """
    started = time.perf_counter()
    if not config.model.path or not config.output.path:
        raise InvalidInputError("model.path and output.path must be set for a fit job")
    if config.report.enabled:
        require_matplotlib()  # before the fit, not after an hour of it
    previous, previous_schema = (read_warm_start(spark, config) if config.model.warm_start
                                 else (None, None))
    with phase(f"reading and checking {config.input.path or config.input.table}",
               logger) as reading:
        prepared, input_columns, counts = prepare_rows(spark, config, need_valid_rows=True)
    with phase("standardising and fitting" if config.preprocess.standardize else "fitting",
               logger) as fitting:
        prepared, schema = _standardised(config, prepared, counts, previous_schema)
        fitted = _fit(config, prepared, counts, previous, schema)
    model_id = config.output.model_id or model_id_of(fitted.model)
    with phase(f"labelling {counts.rows} rows into {config.output.path}", logger) as labelling:
        labelled = label(scoring_model(fitted.model), rows_to_label(config, prepared),
                         input_columns, model_id, fitted.threshold,
                         config.output.imputed_column, schema)
        rows = write_outputs(spark, config, prepared, labelled, counts,
                             getattr(fitted.model, "noiseLogVolume", None) is not None)
    report = _report(config, fitted, model_id, schema, counts, rows,
                     {"reading": reading.seconds, "fitting": fitting.seconds,
                      "labelling": labelling.seconds})
    with phase(f"writing the model artifact {config.model.path}", logger):
        _publish_artifact(spark, config.model.path, fitted, model_id, schema, report)
    if config.report.enabled:
        local_model = config.model.path.removeprefix("file://").removeprefix("file:")
        report["report_path"] = run_report(spark, config.model.path, config.report.path
                                           or os.path.join(local_model, "report"))
    report["seconds_total"] = time.perf_counter() - started
    return report
