"""The score job: label new rows with a saved model artifact."""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import SparkSession

from ..errors import InvalidInputError
from ..runtime.progress import phase
from .artifact import load_model, read_artifact_schema
from .config import JobConfig
from .drift import scored_drift, training_statistics
from .prepare import incomplete_share
from .rows import score_rows, valid_rows
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
    model = load_model(spark, config.model.path)
    if config.input.stream:
        return label_new_files(spark, config, model, artifact, schema)
    prepared, counts, rows = score_rows(spark, config, model, artifact, schema)
    report = {"model_id": artifact["model_id"], "invalid_rows": {
        "total": counts.invalid, "by_reason": counts.by_reason}, **rows}
    if config.drift.enabled:
        training = training_statistics(artifact, config.model.path)
        with phase("checking the rows for drift", logger):
            report["drift"] = scored_drift(model, valid_rows(prepared), training,
                                           config.drift)
            if config.input.missing_features == "marginalize":
                report["drift"]["incomplete_rows"] = {
                    "share": incomplete_share(counts),
                    "training_share": training.get("incomplete_share")}
    return report
