"""Many models of one dataset: ``fitMultiple`` in shared passes against separate ``fit``
calls and against MLlib fitting the same models one by one (``spark-gmm bench
--fit-multiple``)."""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..ml.estimator import GaussianMixture
from ..runtime.progress import phase

logger = logging.getLogger(__name__)
ROUNDS = 3


def _seconds(function: Any, what: str) -> float:
    with phase(what, logger):
        started = time.perf_counter()
        function()
        return time.perf_counter() - started


def fit_multiple_speedups(df: DataFrame, max_iter: int = 15, seed: int = 0,
                          mllib: bool = True) -> dict[str, Any]:
    """Seconds and ratios of: 6 values of k (2..7, full), fitMultiple against 6 ``fit``
    calls and against MLlib's 6 fits; and 5 values of k × 4 covariance types (20 models),
    fitMultiple against 20 ``fit`` calls. Default initMode, ``tol`` 0, the same session;
    the input is cached first so that no system pays for reading it."""
    features = df.select(F.array(*[F.col(c) for c in df.columns]).alias("features")).cache()
    features.count()
    gmm = GaussianMixture(maxIter=max_iter, tol=0.0, seed=seed)
    results: dict[str, Any] = {}
    for name, maps in (
        ("k_2_to_7", [{gmm.k: k} for k in range(2, 8)]),
        ("k_2_to_6_by_4_types", [{gmm.k: k, gmm.covarianceType: t}
                                 for t in ("full", "tied", "diag", "spherical")
                                 for k in range(2, 7)]),
    ):
        # Three interleaved rounds, separate fits first in each, so that neither way is
        # always the one timed on the colder JVM; medians.
        separate, shared = [], []
        for index in range(ROUNDS):
            where = f"benchmark: fitMultiple of {len(maps)} models, round {index + 1} of {ROUNDS}"
            separate.append(_seconds(lambda m=maps: [gmm.fit(features, p) for p in m],
                                     f"{where}, separate fits"))
            shared.append(_seconds(lambda m=maps: dict(gmm.fitMultiple(features, m)),
                                   f"{where}, shared passes"))
        entry = {"models": len(maps), "fit_multiple_seconds": statistics.median(shared),
                 "separate_fits_seconds": statistics.median(separate),
                 "fit_multiple_rounds": shared, "separate_fits_rounds": separate}
        entry["separate_over_shared"] = (entry["separate_fits_seconds"]
                                         / entry["fit_multiple_seconds"])
        logger.info("fitMultiple of %d models: %.1f s shared, %.1f s as separate fits "
                    "(medians of %d rounds)", len(maps), entry["fit_multiple_seconds"],
                    entry["separate_fits_seconds"], ROUNDS)
        if mllib and name == "k_2_to_7":
            from pyspark.ml.clustering import GaussianMixture as MLlibGaussianMixture
            from pyspark.ml.functions import array_to_vector

            vectors = features.select(array_to_vector("features").alias("features")).cache()
            vectors.count()
            theirs = MLlibGaussianMixture(maxIter=max_iter, tol=0.0, seed=seed)
            entry["mllib_seconds"] = _seconds(lambda g=theirs, v=vectors: [
                g.fit(v, {g.k: k}) for k in range(2, 8)], "benchmark: MLlib's 6 fits")
            entry["mllib_over_shared"] = entry["mllib_seconds"] / entry["fit_multiple_seconds"]
            vectors.unpersist()
        results[name] = entry
    features.unpersist()
    return results
