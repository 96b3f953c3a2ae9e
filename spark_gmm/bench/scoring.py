"""Scoring in the benchmark: transform + Parquet write, against writing the rows alone."""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pyspark.sql import DataFrame

from ..ml.model import GaussianMixtureModel
from ..runtime.progress import phase

logger = logging.getLogger(__name__)
SHOWN = {"write_only": "writing the rows alone", "ours": "ours", "mllib": "MLlib"}


def _timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def scoring_rounds(df: DataFrame, ours: GaussianMixtureModel, mllib: Any, work_dir: str,
                   where: str = "full data") -> dict[str, Any]:
    """Median seconds of transform + Parquet write for ours, MLlib and a write-only baseline
    over three interleaved rounds (keys ``<name>_seconds``), and every round's seconds
    (``rounds``: ``{name: [seconds, ...]}``)."""
    from pyspark.ml.feature import VectorAssembler

    vectors = VectorAssembler(inputCols=df.columns, outputCol="features").transform(df)
    writers: dict[str, Callable[[], DataFrame]] = {
        # What any scorer pays before it scores: reading, assembling and writing the rows.
        "write_only": lambda: vectors,
        "ours": lambda: ours.transform(vectors),
    }
    if mllib is not None:
        writers["mllib"] = lambda: mllib.transform(vectors)
    samples: dict[str, list[float]] = {name: [] for name in writers}
    # Parquet writes are the noisiest thing we time: interleave three rounds, keep medians.
    for index in range(3):
        for name, frame in writers.items():
            writer = frame().write.mode("overwrite")
            target = os.path.join(work_dir, f"scored_{name}")
            with phase(f"benchmark: scoring round {index + 1} of 3, {SHOWN[name]} ({where})",
                       logger):
                samples[name].append(_timed(partial(writer.parquet, target)))
    medians: dict[str, Any] = {f"{name}_seconds": statistics.median(times)
                               for name, times in samples.items()}
    return {**medians, "rounds": samples}
