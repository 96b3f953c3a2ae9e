"""Has the data moved away from the model? Three checks of new rows against the training run.

- **Log-likelihood**: the new rows' mean log-density, against the training rows' mean, in
  units of the training rows' standard deviation (a drop means rows the model explains
  worse).
- **Component shares**: each component's share of hard assignments against the model
  weights, as a population stability index PSI = Σ (p − π) ln(p / π) (shares floored at
  1e-6).
- **Low log-likelihood**: the share of new rows below the training rows' ``low_quantile``
  log-density (about ``low_quantile`` on data like the training data).

The fit job records what the checks need in the artifact's ``features.json``
(``training_log_likelihood``); thresholds come from the ``[drift]`` config section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..errors import InvalidInputError
from .artifact import load_model, read_artifact, read_artifact_schema
from .config import DriftConfig, JobConfig
from .estimators import FittedModel
from .prepare import apply_standardisation
from .rows import LOG_LIKELIHOOD, prepare_rows, scoring_model, valid_rows

_SHARE_FLOOR = 1e-6


def training_log_likelihood(scored: DataFrame, low_quantile: float,
                            outlier_quantile: float = 0.0
                            ) -> tuple[dict[str, float], float | None]:
    """What the drift checks compare against, from the training rows scored by the model,
    and (when ``outlier_quantile`` > 0) the log-density below which a row is an outlier:
    both quantiles from one pass."""
    row = scored.agg(F.mean(LOG_LIKELIHOOD).alias("mean"),
                     F.stddev_pop(LOG_LIKELIHOOD).alias("std")).first()
    wanted = [low_quantile] + ([outlier_quantile] if outlier_quantile > 0 else [])
    low, *outlier = scored.approxQuantile(LOG_LIKELIHOOD, wanted, 1e-4)
    return ({"mean": float(row["mean"]), "std": float(row["std"]),
             "low_quantile": low_quantile, "low": float(low)},
            float(outlier[0]) if outlier else None)


def training_statistics(artifact: dict[str, Any], path: str) -> dict[str, float]:
    """The artifact's ``training_log_likelihood``, which the drift checks need.

    Raises
    ------
    InvalidInputError
        The artifact predates them.
    """
    training = artifact.get("training_log_likelihood")
    if not training:
        raise InvalidInputError(f"the artifact at {path!r} has no training log-likelihood "
                                "statistics (fitted by an older version); refit it to check "
                                "drift")
    return training


def population_stability(shares: list[float], expected: list[float]) -> float:
    """PSI = Σ (p − q) ln(p / q), both floored at 1e-6 so that an empty component counts."""
    total = 0.0
    for p, q in zip(shares, expected):
        p, q = max(p, _SHARE_FLOOR), max(q, _SHARE_FLOOR)
        total += (p - q) * math.log(p / q)
    return total


def drift_checks(rows: int, mean_log_likelihood: float, low_rows: int, counts: list[int],
                 weights: list[float], training: dict[str, float], limits: DriftConfig
                 ) -> dict[str, Any]:
    """The three checks and whether any threshold is exceeded (``drifted``)."""
    drop = (training["mean"] - mean_log_likelihood) / training["std"] if training["std"] > 0 \
        else (0.0 if mean_log_likelihood >= training["mean"] else math.inf)
    shares = [c / rows for c in counts]
    psi = population_stability(shares, weights)
    low_share = low_rows / rows
    checks = {
        "log_likelihood": {"mean": mean_log_likelihood, "training_mean": training["mean"],
                           "training_std": training["std"], "drop_in_training_std": drop,
                           "threshold": limits.max_log_likelihood_drop,
                           "exceeded": drop > limits.max_log_likelihood_drop},
        "component_shares": {"shares": shares, "weights": weights, "psi": psi,
                             "threshold": limits.max_psi, "exceeded": psi > limits.max_psi},
        "low_log_likelihood": {"quantile": training["low_quantile"],
                               "training_value": training["low"], "share": low_share,
                               "threshold": limits.max_low_share,
                               "exceeded": low_share > limits.max_low_share},
    }
    return {"rows": rows, **checks, "drifted": any(c["exceeded"] for c in checks.values())}


@dataclass
class DriftSums:
    """What the checks need of a set of rows, summed so that sets of rows (a streaming
    run's micro-batches) add up: rows, Σ log-density, rows below the low quantile, and
    hard assignments per component."""

    rows: int
    log_likelihood: float
    low_rows: int
    counts: list[int]

    def __add__(self, other: DriftSums) -> DriftSums:
        return DriftSums(self.rows + other.rows, self.log_likelihood + other.log_likelihood,
                         self.low_rows + other.low_rows,
                         [a + b for a, b in zip(self.counts, other.counts)])

    def checks(self, model: FittedModel, training: dict[str, float],
               limits: DriftConfig) -> dict[str, Any]:
        """:func:`drift_checks` of these rows.

        Raises
        ------
        InvalidInputError
            There are no rows.
        """
        if not self.rows:
            raise InvalidInputError("no valid rows to check for drift; check input.path and "
                                    "the invalid-row counts")
        weights = model.weights.tolist() + ([model.noiseWeight] if _has_noise(model) else [])
        return drift_checks(self.rows, self.log_likelihood / self.rows, self.low_rows,
                            self.counts, weights, training, limits)


def drift_sums(model: FittedModel, valid: DataFrame, training: dict[str, float]
               ) -> DriftSums:
    """:class:`DriftSums` of prepared, valid rows (the features column of the jobs)."""
    scored = scoring_model(model).transform(valid).select("prediction", LOG_LIKELIHOOD)
    by_component = {int(r["prediction"]): int(r["count"])
                    for r in scored.groupBy("prediction").count().collect()}
    row = scored.agg(F.count(F.lit(1)).alias("rows"), F.sum(LOG_LIKELIHOOD).alias("sum"),
                     F.sum((F.col(LOG_LIKELIHOOD) < training["low"]).cast("long"))
                     .alias("low")).first()
    return DriftSums(int(row["rows"]), float(row["sum"] or 0.0), int(row["low"] or 0),
                     [by_component.get(j, 0) for j in range(model.getK())]
                     + ([by_component.get(-1, 0)] if _has_noise(model) else []))


def _has_noise(model: FittedModel) -> bool:
    # A GaussianMixtureModel with a noise component: its rows (prediction −1) and weight
    # are the last component of the shares' check.
    return getattr(model, "noiseLogVolume", None) is not None


def scored_drift(model: FittedModel, valid: DataFrame, training: dict[str, float],
                 limits: DriftConfig) -> dict[str, Any]:
    """The checks for prepared, valid rows (the features column of the jobs)."""
    return drift_sums(model, valid, training).checks(model, training, limits)


def run_drift(spark: SparkSession, config: JobConfig) -> dict[str, Any]:
    """Check the rows of ``config.input`` against the artifact at ``config.model.path``.

    Raises
    ------
    InvalidInputError
        No artifact, other features, an artifact without training statistics, invalid rows
        under ``error``, or no valid rows.
    """
    artifact, schema = read_artifact_schema(spark, config.model.path, config, "check drift")
    training = training_statistics(artifact, config.model.path)
    model = load_model(spark, config.model.path)
    prepared, _, counts = prepare_rows(spark, config, schema.n_features, need_valid_rows=True)
    prepared = apply_standardisation(prepared, schema.mean, schema.scale)
    report = scored_drift(model, valid_rows(prepared), training, config.drift)
    return {"model_id": artifact["model_id"], "invalid_rows": counts.invalid, **report}


def drift_config(spark: SparkSession, model_path: str, input_path: str, input_format: str,
                 overrides: list[str]) -> JobConfig:
    """A job config for ``spark-gmm drift --model --input`` without a config file: the
    features are the artifact's own."""
    from .config import build_config

    _, schema = read_artifact(spark, model_path, "--model")
    columns = ({"features": list(schema.columns)} if schema.columns
               else {"features_column": schema.vector_column})
    return build_config({"input": {"path": input_path, "format": input_format, **columns},
                         "model": {"path": model_path}}, overrides)
