"""``spark-gmm report``: the fit report of a model artifact (see :mod:`spark_gmm.report`)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..errors import cause_in_words
from ..kernels import GaussianParameters
from ..ml.bayesian_model import EFFECTIVE_WEIGHT, BayesianGaussianMixtureModel
from ..ml.model import GaussianMixtureModel
from ..report.page import ReportInputs, require_matplotlib, write_report
from ..runtime.ingest import features_array
from .artifact import load_model, read_artifact
from .estimators import FittedModel
from .io import paths_of, read_json
from .locations import artifact_problem

SAMPLE = "sample"  # the artifact's Parquet sample of training rows, in the model's units


def sample_rows(valid: DataFrame, features_col: str, n_rows: int, limit: int,
                seed: int) -> np.ndarray:
    """About ``limit`` uniformly drawn rows of ``valid`` (all of them when there are fewer),
    shape (n, D), for the report's row figures."""
    if limit <= 0 or n_rows == 0:
        return np.empty((0, 0))
    # Bernoulli sampling with a 20 % margin, then a cut: one pass, no sort of the input.
    fraction = min(1.0, 1.2 * limit / n_rows)
    picked = (valid.select(features_array(valid, features_col).alias("x"))
              .sample(withReplacement=False, fraction=fraction, seed=seed).limit(limit))
    rows = [row.x for row in picked.collect()]
    return np.array(rows, dtype=np.float64) if rows else np.empty((0, 0))


def write_sample(spark: SparkSession, path: str, sample: np.ndarray) -> None:
    """Store ``sample`` as Parquet (one ``features`` array column) at ``path``."""
    frame = spark.createDataFrame([(row.tolist(),) for row in sample],
                                  "features array<double>")
    frame.coalesce(1).write.parquet(path)


def _read_sample(spark: SparkSession, path: str) -> np.ndarray | None:
    if not paths_of(spark).exists(path):
        return None
    rows = spark.read.parquet(path).select(F.col("features")).collect()
    return np.array([row.features for row in rows], dtype=np.float64) if rows else None


def _number(value: Any, digits: int = 6) -> str:
    return "—" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(
        value)


def _mixture_facts(model: GaussianMixtureModel, diagnostics: dict[str, Any]
                   ) -> list[tuple[str, str]]:
    summary = model.summary if model.hasSummary else None
    return [
        ("estimator", "GaussianMixture"),
        ("K, covariance type", f"{model.getK()}, {model.getCovarianceType()}"),
        ("prior", "none (maximum likelihood)" if model.getPrior() == "none" else
         f"{model.getPrior()} (MAP-EM; log posterior "
         f"{_number(summary.logPosterior if summary else None, 10)})"),
    ]


def _bayesian_facts(model: BayesianGaussianMixtureModel, diagnostics: dict[str, Any]
                    ) -> list[tuple[str, str]]:
    prior = model.prior
    effective = int(np.sum(model.weights > EFFECTIVE_WEIGHT))
    return [
        ("estimator", "BayesianGaussianMixture (variational Bayes)"),
        ("K (upper bound), effective components, covariance type",
         f"{model.getK()}, {effective} (weight > {EFFECTIVE_WEIGHT:g}), "
         f"{model.getCovarianceType()}"),
        ("weight prior (α₀)", f"{prior.weight_type} ({_number(prior.weight_concentration)})"),
        ("mean precision β₀, degrees of freedom ν₀",
         f"{_number(prior.mean_precision)}, {_number(prior.dof)}"),
    ]


def _objective_fact(model: FittedModel, diagnostics: dict[str, Any]) -> tuple[str, str]:
    if isinstance(model, BayesianGaussianMixtureModel):
        bound = model.summary.lowerBound if model.hasSummary else diagnostics.get("lower_bound")
        return "lower bound", _number(bound, 10)
    summary = model.summary if model.hasSummary else None
    return ("log-likelihood (total, per row)", f"{_number(diagnostics.get('log_likelihood'), 10)}"
            + (f", {summary.logLikelihood / summary.weightSum:.6g}" if summary else ""))


def _facts(diagnostics: dict[str, Any], model: FittedModel) -> list[tuple[str, str]]:
    config = diagnostics.get("config", {}).get("model", {})
    invalid = diagnostics.get("invalid_rows", {})
    specific = (_bayesian_facts(model, diagnostics)
                if isinstance(model, BayesianGaussianMixtureModel)
                else _mixture_facts(model, diagnostics))
    facts = [
        ("model id", str(diagnostics.get("model_id", "—"))),
        ("spark-gmm version", str(diagnostics.get("spark_gmm_version", "—"))),
        ("rows read", _number(diagnostics.get("rows_read"))),
        ("invalid rows", f"{invalid.get('total', 0)}"
         + (f" ({', '.join(f'{k}: {v}' for k, v in invalid.get('by_reason', {}).items())})"
            if invalid.get("by_reason") else "")),
        ("rows labelled / quarantined", f"{diagnostics.get('rows_labelled', '—')} / "
         f"{diagnostics.get('rows_quarantined', '—')}"),
        ("features", str(model.numFeatures)
         + (" (standardised)" if diagnostics.get("feature_schema", {}).get("mean") else "")),
        *specific,
        ("regCovar, initMode, nInit", f"{_number(config.get('reg_covar'))}, "
         f"{config.get('init_mode', '—')}, {config.get('n_init', '—')}"),
        ("iterations (maxIter, tol)", f"{diagnostics.get('num_iter', '—')} "
         f"({config.get('max_iter', '—')}, {_number(config.get('tol'))})"),
        ("converged", str(diagnostics.get("converged", "—"))),
        _objective_fact(model, diagnostics),
    ]
    phases = diagnostics.get("job_seconds_per_phase") or {}
    fit_phases = diagnostics.get("fit_seconds_per_phase") or {}
    if phases:
        facts.append(("job seconds per phase", ", ".join(f"{name} {seconds:.1f}"
                                                         for name, seconds in phases.items())))
    if fit_phases:
        facts.append(("fit seconds per phase", ", ".join(f"{name} {seconds:.2f}"
                                                         for name, seconds in fit_phases.items())))
    passes = diagnostics.get("em_passes") or {}
    if passes:
        facts.append(("passes over the rows", f"{passes.get('resident_tasks', 0)} by resident "
                      f"tasks, {passes.get('spark_jobs', 0)} as Spark jobs"))
    return facts


def report_inputs(spark: SparkSession, artifact_dir: str, key: str = "model.path"
                  ) -> ReportInputs:
    """What the report of the artifact at ``artifact_dir`` shows.

    Raises
    ------
    InvalidInputError
        No readable artifact there.
    """
    _, schema = read_artifact(spark, artifact_dir, key)
    try:
        diagnostics = read_json(spark, os.path.join(artifact_dir, "diagnostics.json"))
    except Exception as error:
        raise artifact_problem(artifact_dir, key, "is not complete: its diagnostics.json "
                               f"cannot be read ({cause_in_words(error)})") from error
    model = load_model(spark, artifact_dir)
    names = list(schema.columns) or [f"{schema.vector_column}[{j}]"
                                     for j in range(model.numFeatures)]
    common = dict(feature_names=names, mean=schema.mean, scale=schema.scale,
                  selection=diagnostics.get("model_selection"),
                  sample=_read_sample(spark, os.path.join(artifact_dir, SAMPLE)),
                  facts=_facts(diagnostics, model), title=f"Fit report of {artifact_dir}")
    if isinstance(model, BayesianGaussianMixtureModel):
        return _bayesian_inputs(model, diagnostics, common)
    summary = model.summary if model.hasSummary else None
    histories = (summary.restartLogLikelihoodHistories or [summary.logLikelihoodHistory]
                 if summary else [])
    return ReportInputs(
        parameters=model.parameters, histories=histories,
        cluster_sizes=list(diagnostics.get("cluster_sizes") or
                           (summary.clusterSizes if summary else [0] * model.getK())),
        criteria={name: diagnostics.get(name) for name in ("bic", "aic", "icl")},
        noise_size=diagnostics.get("noise_size",
                                   summary.noiseSize if summary else None), **common)


def _bayesian_inputs(model: BayesianGaussianMixtureModel, diagnostics: dict[str, Any],
                     common: dict[str, Any]) -> ReportInputs:
    """A Bayesian model's report: its expected parameters drawn, its own predictions, the
    lower bound per iteration, the pruned components; no BIC."""
    summary = model.summary if model.hasSummary else None
    p = model.posterior
    return ReportInputs(
        parameters=GaussianParameters.from_covariances(p.weights, p.means, p.covariances,
                                                       p.covariance_type),
        histories=(summary.restartLowerBounds or [summary.lowerBoundHistory]) if summary
        else [], cluster_sizes=list(diagnostics.get("cluster_sizes") or [0] * model.getK()),
        criteria={}, estimator="BayesianGaussianMixture", objective="lower bound",
        scoring=model.scoringMixture(), effective_weight=EFFECTIVE_WEIGHT, **common)


def run_report(spark: SparkSession, artifact_dir: str, output_dir: str,
               key: str = "model.path") -> str:
    """Write ``output_dir/report.html`` for the artifact at ``artifact_dir``; its path.

    Raises
    ------
    InvalidInputError
        matplotlib is missing, or no readable artifact at ``artifact_dir``.
    """
    require_matplotlib()  # before reading anything: the fix is an install, not the artifact
    return write_report(report_inputs(spark, artifact_dir, key), output_dir)
