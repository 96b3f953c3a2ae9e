"""The score job's incremental mode (``input.stream = true``): label the files that arrived
in ``input.path`` since the last run, exactly once, then stop.

A Structured Streaming file source with the ``availableNow`` trigger lists the files not yet
recorded in ``output.checkpoint_path`` and hands them over in micro-batches. Each
micro-batch is labelled as the batch job labels its input (the same checks, invalid-row
policy and row accounting) and published atomically as ``output.path/batch=<id>``; the
checkpoint records the batch as done only after that. A run killed part-way therefore
leaves its last batch unrecorded: the next run labels the same files again under the same
batch id and replaces that directory, so no row is lost or labelled twice.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass, field, replace
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from .config import JobConfig
from .drift import DriftSums, drift_sums, training_statistics
from .estimators import FittedModel
from .io import read_input
from .prepare import FeatureSchema
from .rows import score_rows, valid_rows

logger = logging.getLogger(__name__)

BATCH_COLUMN = "batch"


@dataclass
class _RunTotals:
    """What the run's micro-batches labelled, added up."""

    batches: list[int] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    drift: DriftSums | None = None

    def add(self, batch_id: int, rows: dict[str, int], by_reason: dict[str, int]) -> None:
        self.batches.append(batch_id)
        for key, value in rows.items():
            self.rows[key] = self.rows.get(key, 0) + value
        for reason, count in by_reason.items():
            self.by_reason[reason] = self.by_reason.get(reason, 0) + count


def batch_config(config: JobConfig, batch_id: int) -> JobConfig:
    """``config`` with the outputs of one micro-batch: ``batch=<id>`` below each."""
    def below(path: str) -> str:
        return posixpath.join(path, f"{BATCH_COLUMN}={batch_id}") if path else path

    return replace(config,
                   output=replace(config.output, path=below(config.output.path)),
                   preprocess=replace(config.preprocess,
                                      quarantine_path=below(config.preprocess.quarantine_path)))


def _new_files(spark: SparkSession, config: JobConfig) -> DataFrame:
    # A file stream needs its schema up front: the one a batch read of the files finds
    # (so rows are typed as the batch job types them).
    schema: StructType = read_input(spark, config.input).schema
    reader = spark.readStream.schema(schema)
    if config.input.max_files_per_batch:
        reader = reader.option("maxFilesPerTrigger", config.input.max_files_per_batch)
    if config.input.format == "csv":
        return reader.option("header", True).csv(config.input.path)
    return reader.parquet(config.input.path)


def label_new_files(spark: SparkSession, config: JobConfig, model: FittedModel,
                    artifact: dict[str, Any], schema: FeatureSchema) -> dict[str, Any]:
    """Label the files not labelled by an earlier run; the report of the batch job, summed
    over this run's micro-batches, plus their ids (``batches``, empty when no file is new).

    Raises
    ------
    InvalidInputError
        As the batch job, for the first micro-batch that has the problem; earlier
        micro-batches of the run stay published and recorded.
    """
    totals = _RunTotals()
    training = training_statistics(artifact, config.model.path) if config.drift.enabled \
        else None
    failures: list[BaseException] = []

    def label_batch(frame: DataFrame, batch_id: int) -> None:
        try:
            this = batch_config(config, batch_id)
            prepared, counts, rows = score_rows(frame.sparkSession, this, model, artifact,
                                                schema, rows=frame)
            totals.add(batch_id, rows, counts.by_reason)
            if training is not None:
                sums = drift_sums(model, valid_rows(prepared), training)
                totals.drift = sums if totals.drift is None else totals.drift + sums
            logger.info("batch %d: %d rows labelled into %s", batch_id,
                        rows["rows_labelled"], this.output.path)
        except BaseException as error:
            failures.append(error)
            raise

    query = (_new_files(spark, config).writeStream
             .foreachBatch(label_batch)
             .option("checkpointLocation", config.output.checkpoint_path)
             .trigger(availableNow=True)
             .start())
    try:
        query.awaitTermination()
    except Exception:
        if failures:  # the job's own error, not Spark's wrapping of it
            raise failures[0] from None
        raise
    report: dict[str, Any] = {
        "model_id": artifact["model_id"], "batches": totals.batches,
        "invalid_rows": {"total": sum(totals.by_reason.values()),
                         "by_reason": totals.by_reason},
        **{key: totals.rows.get(key, 0) for key in (
            "rows_read", "rows_labelled", "rows_quarantined", "rows_skipped",
            "rows_with_null_prediction")},
    }
    if not totals.batches:
        logger.info("no new files in %s since the last run: nothing to label",
                    config.input.path)
    if training is not None and totals.drift is not None:
        report["drift"] = totals.drift.checks(model, training, config.drift)
    return report
