"""Interleaved rounds of the timed fits, and the kernel alone in plain Python processes.

MLlib's speed moves by 1.6x from hour to hour on these machines, so a ratio is only worth
what its rounds are: each round times ours (from a random-rows start and from our own
k-means‖) and MLlib back to back, and the ratios are medians over the rounds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..fit.initialization import mixtures_from_centres
from ..kernels import block_statistics
from ..ml.estimator import GaussianMixture
from ..ml.model import GaussianMixtureModel
from ..runtime.progress import phase

logger = logging.getLogger(__name__)


def _fit(df: DataFrame, estimator: GaussianMixture, what: str
         ) -> tuple[float, GaussianMixtureModel]:
    features = F.array(*[F.col(c) for c in df.columns]).alias("features")
    # The fit logs its own phases and heartbeats: here only what it is and how long it took.
    logger.info("%s ...", what)
    started = time.perf_counter()
    model = estimator.fit(df.select(features))
    seconds = time.perf_counter() - started
    logger.info("%s took %.2f s", what, seconds)
    return seconds, model


def _ours(df: DataFrame, spec: Any, init: GaussianMixtureModel | None, what: str
          ) -> dict[str, Any]:
    estimator = GaussianMixture(k=spec.k, maxIter=spec.iterations, tol=0.0, seed=spec.seed)
    if init is not None:
        estimator.setInitialModel(init)
    seconds, model = _fit(df, estimator, what)
    summary, run = model.summary, model.runRecord
    return {"end_to_end_seconds": seconds,
            "seconds_per_iteration": statistics.median(run.iterationSeconds),
            "iteration_seconds": run.iterationSeconds,
            "phase_seconds": run.phaseSeconds,
            "mean_log_likelihood": summary.logLikelihood / summary.weightSum,
            "_model": model}


def interleaved_rounds(df: DataFrame, spec: Any, init: GaussianMixtureModel,
                       mllib: Callable[[str], dict[str, Any]] | None) -> dict[str, Any]:
    """``spec.rounds`` rounds of: ours from ``init`` (random rows), ours from k-means‖,
    MLlib (``mllib(name of the round)``); per-round values and the medians of the per-round
    ratios."""
    rounds: list[dict[str, Any]] = []
    for index in range(spec.rounds):
        where = f"benchmark: round {index + 1} of {spec.rounds}"
        entry = {"random_rows": _ours(df, spec, init, f"{where}, ours from the random-rows start"),
                 "kmeans": _ours(df, spec, None, f"{where}, ours from the k-means|| start")}
        if mllib is not None:
            entry["mllib"] = mllib(f"round {index + 1} of {spec.rounds}")
        rounds.append(entry)
    summary: dict[str, Any] = {"rounds": [
        {start: {k: v for k, v in values.items() if not k.startswith("_")}
         for start, values in entry.items()} for entry in rounds]}
    for start in ("random_rows", "kmeans"):
        per_iteration = [r[start]["seconds_per_iteration"] for r in rounds]
        summary[f"{start}_seconds_per_iteration"] = statistics.median(per_iteration)
        phases = [r[start]["phase_seconds"] for r in rounds]
        init = statistics.median(p.get("initialisation", 0.0) for p in phases)
        em = statistics.median(p.get("em", 0.0) for p in phases)
        summary[f"{start}_initialisation_seconds"] = init
        summary[f"{start}_initialisation_share"] = init / (init + em) if init + em else None
        if mllib is not None:
            ratios = [r["mllib"]["seconds_per_iteration"] / r[start]["seconds_per_iteration"]
                      for r in rounds if r["mllib"]["seconds_per_iteration"]]
            summary[f"mllib_over_{start}_per_iteration"] = (statistics.median(ratios)
                                                            if ratios else None)
            summary[f"mllib_over_{start}_per_iteration_rounds"] = ratios
    summary["_last_model"] = rounds[-1]["random_rows"]["_model"]
    return summary


_KERNEL = textwrap.dedent("""
    import json, sys, time
    import numpy as np, pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits
    from spark_gmm.kernels import GaussianParameters, block_statistics
    spec = json.loads(sys.stdin.read())
    x = np.column_stack([np.concatenate([pq.read_table(f).column(c).to_numpy()
                                         for f in spec["files"]]) for c in spec["columns"]])
    center = np.array(spec["center"])
    params = GaussianParameters.from_covariances(
        np.array(spec["weights"]), np.array(spec["means"]) - center,
        np.array(spec["covariances"]), spec["covariance_type"])
    times = []
    with threadpool_limits(1):
        for _ in range(spec["iterations"]):
            started = time.perf_counter()
            block_statistics(x, None, [params], center)
            times.append(time.perf_counter() - started)
    print(json.dumps(times))
""")


def kernel_alone(path: str, columns: list[str], model: GaussianMixtureModel, center: np.ndarray,
                 processes: int, iterations: int) -> dict[str, Any]:
    """The statistics kernel on the same rows, with no Spark: one plain Python process per
    core, each on its share of the Parquet files, all at once. Per iteration: the slowest
    process (they run in parallel); the median over iterations is returned."""
    files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet"))
    shares = [files[i::processes] for i in range(processes) if files[i::processes]]
    request = {"columns": columns, "center": center.tolist(), "iterations": iterations,
               "weights": model.weights.tolist(), "means": model.means.tolist(),
               "covariances": model.covariances.tolist(),
               "covariance_type": model.getCovarianceType()}
    running = [subprocess.Popen([sys.executable, "-c", _KERNEL], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in shares]
    for process, share in zip(running, shares):
        assert process.stdin is not None
        process.stdin.write(json.dumps({**request, "files": share}))
        process.stdin.close()
    times = []
    for process in running:
        assert process.stdout is not None
        times.append(json.loads(process.stdout.read()))
        process.wait()
    slowest = [max(t[i] for t in times) for i in range(iterations)]
    return {"processes": len(shares), "seconds_per_iteration": statistics.median(slowest),
            "iteration_seconds": slowest}


def initialisation_quality(df: DataFrame, spec: Any, seeds: int, x: np.ndarray
                           ) -> dict[str, Any]:
    """Final mean log-likelihood of ``spec.iterations`` EM iterations from our k-means‖ and
    from MLlib's KMeans (k-means‖), for ``seeds`` seeds, and each initialisation's seconds.
    Both sets of centres become a mixture the same way: one hard assignment of the rows
    ``x`` and its M-step, as the fit's own initialisation turns its centres into a mixture."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import VectorAssembler

    assembled = VectorAssembler(inputCols=df.columns, outputCol="features").transform(df)
    ours, theirs, ours_seconds, theirs_seconds = [], [], [], []
    for seed in range(seeds):
        where = f"benchmark: initialisation quality, seed {seed + 1} of {seeds}"
        fitted = _ours(df, _with(spec, seed=seed), None, f"{where}, ours from k-means||")
        ours.append(fitted["mean_log_likelihood"])
        ours_seconds.append(fitted["phase_seconds"]["initialisation"])
        with phase(f"{where}, MLlib's KMeans", logger):
            started = time.perf_counter()
            centres = np.array(KMeans(k=spec.k, seed=seed, maxIter=20).fit(assembled)
                               .clusterCenters())
            theirs_seconds.append(time.perf_counter() - started)
        start = _from_centres(x, centres)
        theirs.append(_ours(df, _with(spec, seed=seed), start,
                            f"{where}, ours from MLlib's KMeans")["mean_log_likelihood"])
    return {"ours_kmeans_parallel": ours, "mllib_kmeans": theirs,
            "ours_initialisation_seconds": ours_seconds, "mllib_kmeans_seconds": theirs_seconds}


def _with(spec: Any, **changes: Any) -> Any:
    return dataclasses.replace(spec, **changes)


def _from_centres(x: np.ndarray, centres: np.ndarray) -> GaussianMixtureModel:
    # The fit's own conversion (and defaults: full covariance, regCovar 1e-6), its one
    # hard-assignment pass run over the rows in memory.
    center = x.mean(axis=0)
    [params] = mixtures_from_centres(
        lambda models, hard_assignment: block_statistics(x, None, models, center,
                                                         hard_assignment),
        [centres - center], x.var(axis=0), ["full"], [1e-6])
    return GaussianMixtureModel.fromArrays(params.weights, params.means + center,
                                           params.covariances)
