"""The score job: label new rows with a saved model artifact."""

from __future__ import annotations

import logging
import os
from typing import Any

from pyspark.sql import SparkSession

from ..errors import InvalidInputError
from ..ml.model import GaussianMixtureModel
from ..runtime.progress import phase
from .artifact import read_artifact_schema
from .config import JobConfig
from .drift import scored_drift, training_statistics
from .prepare import apply_standardisation
from .rows import label, prepare_rows, rows_to_label, scoring_model, valid_rows, write_outputs
from .stream_score import label_new_files

logger = logging.getLogger(__name__)


def run_score(spark: SparkSession, config: JobConfig) -> dict[str, Any]:
    """Label new rows with a saved model artifact (``model.path``); returns the row counts
    and, with ``drift.enabled``, the drift checks (:mod:`spark_gmm.etl.drift`). With
    ``input.stream``, only the files added since the last run
    (:func:`~spark_gmm.etl.stream_score.label_new_files`).

    Raises
    ------
    InvalidInputError
        No artifact, features that do not match it, or invalid rows under ``error``.
    """
    if not config.model.path or not config.output.path:
        raise InvalidInputError("model.path and output.path must be set for a score job")
    artifact, schema = read_artifact_schema(spark, config.model.path, config, "score")
    model = GaussianMixtureModel.load(os.path.join(config.model.path, "model"))
    if config.input.stream:
        return label_new_files(spark, config, model, artifact, schema)
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
    report = {"model_id": artifact["model_id"], "invalid_rows": {
        "total": counts.invalid, "by_reason": counts.by_reason}, **rows}
    if config.drift.enabled:
        training = training_statistics(artifact, config.model.path)
        with phase("checking the rows for drift", logger):
            report["drift"] = scored_drift(model, valid_rows(prepared), training,
                                           config.drift)
    return report
