"""The score job: label new rows with a saved model artifact."""

from __future__ import annotations

import logging
import os
from typing import Any

from pyspark.sql import SparkSession

from ..errors import InvalidInputError
from ..ml.model import GaussianMixtureModel
from ..runtime.progress import phase
from .config import JobConfig
from .io import read_json
from .prepare import FeatureSchema, apply_standardisation
from .rows import label, prepare_rows, rows_to_label, scoring_model, write_outputs

logger = logging.getLogger(__name__)


def _artifact_schema(spark: SparkSession, config: JobConfig) -> tuple[dict[str, Any],
                                                                        FeatureSchema]:
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
    return artifact, schema


def run_score(spark: SparkSession, config: JobConfig) -> dict[str, Any]:
    """Label new rows with a saved model artifact (``model.path``); returns the row counts.

    Raises
    ------
    InvalidInputError
        No artifact, features that do not match it, or invalid rows under ``error``.
    """
    if not config.model.path or not config.output.path:
        raise InvalidInputError("model.path and output.path must be set for a score job")
    artifact, schema = _artifact_schema(spark, config)
    model = GaussianMixtureModel.load(os.path.join(config.model.path, "model"))
    with phase(f"reading and checking {config.input.path or config.input.table}", logger):
        prepared, input_columns, counts = prepare_rows(spark, config, schema.n_features)
    if counts.n_features not in (0, schema.n_features):
        raise InvalidInputError(f"the input has {counts.n_features} features; the model "
                                f"expects {schema.n_features}")
    prepared = apply_standardisation(prepared, schema.mean, schema.scale)
    labelled = label(scoring_model(model), rows_to_label(config, prepared), input_columns,
                     artifact["model_id"], artifact.get("outlier_log_likelihood_threshold"))
    with phase(f"labelling {counts.rows} rows into {config.output.path}", logger):
        rows = write_outputs(spark, config, prepared, labelled, counts)
    return {"model_id": artifact["model_id"], "invalid_rows": {
        "total": counts.invalid, "by_reason": counts.by_reason}, **rows}
