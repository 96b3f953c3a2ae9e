"""Benchmark: spark-gmm vs Spark MLlib vs scikit-learn, measured in one run and one session.

Per-iteration seconds are medians: ours from the fit's own per-iteration timings; MLlib's
from two fits of different lengths, (T(n) − T(m)) over the difference of the iterations each
really ran (it reports no per-iteration times and may stop early); sklearn's from timing
its own E and M steps one iteration at a time. The floor is the FLOPs of one E+M
iteration of the direct algorithm (K projections + K second moments, 4·N·K·D²) divided by
the dense GEMM rate of numpy measured here on the exact kernel's projection blocks, times the
number of cores; the packed kernel does fewer FLOPs, so it can beat this floor. Unless
``warm_up`` is off, every system first runs once, untimed, on a 20k-row slice, so that JVM
start-up lands on none of the timed runs. End-to-end seconds are each system's second fit
of the full data (ours: an identical fit before it; MLlib: its short fit). Scoring is the
median of three interleaved rounds, next to a write-only baseline.

More measurements of ours: the same fit with one Spark job per EM pass instead of the
resident tasks, how the per-iteration cost grows with the rows (a fit of a 25 %
sample with the same partitions, against the full fit) and, in local mode, the CPU seconds
of the Python workers, the JVM and the driver during the timed fit, and the workers' peak
memory after our fits, next to an interpreter that only imports what they import and to
the feature bytes of the largest partition.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..kernels import GaussianParameters, e_step
from ..ml.estimator import GaussianMixture
from ..ml.model import GaussianMixtureModel
from ..runtime.progress import phase
from ..runtime.resident import resident_tasks_setting
from .floors import gemm_floor, packed_floor
from .optional import optional_measurements
from .report import ratios
from .rounds import initialisation_quality, interleaved_rounds, kernel_alone
from .rows import all_rows, hard_start, streamed_mean
from .scoring import scoring_rounds

logger = logging.getLogger(__name__)

# What a Python worker imports to run our tasks (PySpark's worker, our package, numpy, pyarrow).
WORKER_MODULES = ("pyspark.worker", "spark_gmm.runtime.resident_runner", "spark_gmm.ml.scoring",
                  "threadpoolctl")


@dataclass(frozen=True)
class BenchmarkSpec:
    n: int = 100_000
    d: int = 10
    k: int = 8
    partitions: int = 4
    iterations: int = 10
    seed: int = 0
    input_path: str = ""
    work_dir: str = "output/benchmark"
    run_mllib: bool = True
    run_sklearn: bool = True
    run_scoring: bool = True  # transform + write, three rounds per system: long at 50M rows
    fit_multiple: bool = False  # fitMultiple in shared passes vs separate fits vs MLlib
    warm_up: bool = True
    probe_processes: bool = True  # CPU and memory readings of local processes (psutil)
    rounds: int = 3  # interleaved rounds of ours (both starts) and MLlib
    init_quality_seeds: int = 0  # ours from k-means|| vs from MLlib's KMeans, per seed
    skewed: bool = False  # the rows also as one row group, read as partitions of [N, 0]
    bayesian: bool = False  # MAP-EM, VB and scikit-learn's VB against EM per iteration
    missing: bool = False  # an iteration with 30 % of rows missing 1-2 features, vs complete
    noise: bool = False  # an iteration with a noise component, vs plain


def missing_optional_modules(spec: BenchmarkSpec) -> list[str]:
    """What the ``bench`` extra brings that this interpreter lacks, for what ``spec`` runs."""
    wanted = (["psutil"] if spec.probe_processes else []) + (
        ["sklearn"] if spec.run_sklearn else [])
    return [name for name in wanted if importlib.util.find_spec(name) is None]


def generate(spec: BenchmarkSpec, path: str) -> None:
    """A seeded full-covariance mixture written as ``spec.partitions`` Parquet files."""
    rng = np.random.default_rng(spec.seed)
    means = rng.normal(scale=4.0, size=(spec.k, spec.d))
    factors = rng.normal(scale=0.4, size=(spec.k, spec.d, spec.d)) + np.eye(spec.d)
    os.makedirs(path, exist_ok=True)
    bounds = np.linspace(0, spec.n, spec.partitions + 1).astype(int)
    for part, (start, stop) in enumerate(itertools.pairwise(bounds)):
        labels = rng.integers(spec.k, size=stop - start)
        noise = rng.normal(size=(stop - start, spec.d))
        x = np.einsum("nd,nde->ne", noise, factors[labels].transpose(0, 2, 1)) + means[labels]
        pq.write_table(pa.table({f"f{j}": x[:, j] for j in range(spec.d)}),
                       os.path.join(path, f"part-{part:05d}.parquet"))


def data_path(spec: BenchmarkSpec) -> str:
    """The spec's Parquet rows: ``input_path``, or generated under the work directory."""
    return spec.input_path or os.path.join(spec.work_dir, f"data_{spec.n}x{spec.d}x{spec.k}")


def benchmark_input(spark: SparkSession, spec: BenchmarkSpec
                    ) -> tuple[str, DataFrame, GaussianMixtureModel, np.ndarray]:
    """(path, rows read uncached, hard start, mean): each system reads the Parquet files
    itself; the start is k random rows with the global covariance (responsibilities sharpen
    and many underflow over the iterations, so later iterations count too)."""
    path = data_path(spec)
    if not spec.input_path and not os.path.exists(path):
        with phase(f"benchmark: generating {spec.n:,} rows into {path}", logger):
            generate(spec, path)
    with phase(f"benchmark: reading {path} and drawing the random-rows start", logger):
        df = spark.read.parquet(path)
        start, covariance, mean = hard_start(path, df.columns, df.count(), spec.k, spec.seed)
    init = GaussianMixtureModel.fromArrays(np.full(spec.k, 1 / spec.k), start,
                                           np.stack([covariance] * spec.k))
    return path, df, init, mean


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def _fit_ours(df: DataFrame, spec: BenchmarkSpec, init: GaussianMixtureModel, what: str,
              resident_tasks: bool = True, **params: Any) -> tuple[float, GaussianMixtureModel]:
    features = F.array(*[F.col(c) for c in df.columns]).alias("features")
    estimator = GaussianMixture(k=spec.k, maxIter=spec.iterations, tol=0.0, seed=spec.seed,
                                **params)
    estimator.setInitialModel(init)
    # The resident fit keeps the session's setting (a user may have turned them off).
    # The fit logs its own phases and heartbeats: here only what it is and how long it took.
    logger.info("%s ...", what)
    with (nullcontext() if resident_tasks
          else resident_tasks_setting(df.sparkSession, enabled=False)):
        seconds, model = _timed(lambda: estimator.fit(df.select(features)))
    logger.info("%s took %.2f s", what, seconds)
    return seconds, model


def _ours(df: DataFrame, spec: BenchmarkSpec, init: GaussianMixtureModel, where: str = "full data"
          ) -> tuple[dict[str, Any], GaussianMixtureModel]:
    # Timed on the second fit of the full data, as MLlib's end-to-end is its second (long) fit:
    # a JVM's first pass over a new data size still compiles code paths (3-10 s here) that
    # would otherwise fall on whichever system is timed first.
    first_seconds, _ = _fit_ours(df, spec, init, f"benchmark: ours, first fit ({where})")
    jvm = _local_jvm_pid(df.sparkSession) if spec.probe_processes else None
    meter = heap = None
    if spec.probe_processes:
        from .probes import CpuMeter, JvmHeapPeak

        heap = JvmHeapPeak(df.sparkSession.sparkContext._jvm)
        meter = None if jvm is None else CpuMeter(jvm)
    seconds, model = _fit_ours(df, spec, init, f"benchmark: ours, timed fit ({where})")
    cpu = None if meter is None else meter.used()
    summary = model.summary
    memory = {"driver_jvm_heap_peak_bytes": float(heap.bytes()) if heap else None,
              "executor_disk_bytes": float(model.runRecord.storedBytes)}
    # The same fit with every EM pass a Spark job of its own (no resident tasks), after the
    # timed one: on a JVM at least as warm.
    job_seconds, by_jobs = _fit_ours(
        df, spec, init, f"benchmark: ours, one Spark job per pass ({where})",
        resident_tasks=False)
    iteration_seconds = model.runRecord.iterationSeconds
    return {"seconds_per_iteration": statistics.median(iteration_seconds),
            "iteration_seconds": list(iteration_seconds),
            "end_to_end_seconds": seconds, "first_fit_seconds": first_seconds,
            "mean_log_likelihood": summary.logLikelihood / summary.weightSum,
            "job_per_pass_seconds_per_iteration": statistics.median(
                by_jobs.runRecord.iterationSeconds),
            "job_per_pass_end_to_end_seconds": job_seconds,
            "job_per_pass_mean_log_likelihood": (by_jobs.summary.logLikelihood
                                                 / by_jobs.summary.weightSum),
            "cpu_seconds": cpu, **memory}, model


def _local_jvm_pid(spark: SparkSession) -> int | None:
    # Only in local mode do the executors, and their Python workers, run under this JVM.
    if not spark.sparkContext.master.startswith("local"):
        return None
    return spark.sparkContext._jvm.ProcessHandle.current().pid()  # type: ignore[union-attr]


def _scaling(df: DataFrame, spec: BenchmarkSpec, init: GaussianMixtureModel,
             full_seconds_per_iteration: float) -> dict[str, float] | None:
    """Our per-iteration cost on a quarter of the rows (same partitions) against the full data.

    Run after the full fits, on a JVM at least as warm: if anything, the quarter is measured
    faster and the ratio overstated.
    """
    if spec.n < 40 * spec.k:
        return None  # a quarter this small may not hold k distinct rows
    quarter = df.sample(withReplacement=False, fraction=0.25, seed=spec.seed)
    _, model = _fit_ours(quarter, spec, init, "benchmark: ours on a 25 % sample")
    seconds = statistics.median(model.runRecord.iterationSeconds)
    rows = model.summary.weightSum
    return {"rows": rows, "seconds_per_iteration": seconds, "rows_ratio": spec.n / rows,
            "cost_ratio": full_seconds_per_iteration / seconds}


def _worker_memory(spark: SparkSession, df: DataFrame, spec: BenchmarkSpec
                   ) -> dict[str, float] | None:
    """Peak RSS of the local Python workers so far (our fits), next to what they need.

    None unless the master is local (elsewhere the workers run on other machines) and the
    probes are on.
    """
    if not spec.probe_processes:
        return None
    from .probes import imports_peak_rss_bytes, largest_peak_rss, peak_rss_bytes, python_descendants

    d = len(df.columns)
    jvm = _local_jvm_pid(spark)
    workers = [] if jvm is None else python_descendants(jvm)
    peak = largest_peak_rss(workers)
    if peak is None:
        return None
    # A worker folds one partition at a time: the largest one bounds what it maps.
    largest = df.groupBy(F.spark_partition_id()).count().agg(F.max("count")).first()[0]
    feature_bytes = float(largest * d * 8)
    imports = imports_peak_rss_bytes(WORKER_MODULES)
    return {"worker_peak_rss_bytes": float(peak), "python_processes": float(len(workers)),
            # The JVM's own high-water mark over the whole run, MLlib's fits included.
            "driver_jvm_peak_rss_bytes": float(peak_rss_bytes(jvm) or 0) if jvm else None,
            "imports_rss_bytes": float(imports),
            "largest_partition_feature_bytes": feature_bytes,
            "peak_beyond_imports_over_feature_bytes": (peak - imports) / feature_bytes}


def _mllib(df: DataFrame, spec: BenchmarkSpec, where: str = "full data") -> dict[str, Any]:
    from pyspark.ml.clustering import GaussianMixture as MLlibGaussianMixture
    from pyspark.ml.feature import VectorAssembler

    def fit(iterations: int) -> tuple[float, Any]:
        assembled = VectorAssembler(inputCols=df.columns, outputCol="features").transform(df)
        gmm = MLlibGaussianMixture(k=spec.k, maxIter=iterations, tol=0.0, seed=spec.seed)
        with phase(f"benchmark: MLlib, {iterations}-iteration fit ({where})", logger):
            return _timed(lambda: gmm.fit(assembled))

    # MLlib reports no per-iteration times: difference of a short and a long fit, divided by
    # the iterations each really ran. MLlib stops once its log-likelihood does not move (at
    # D = 50 after 2 iterations: its linear-space densities underflow); a 1-iteration short
    # fit still leaves one whole iteration to measure there.
    short_seconds, short_model = fit(1)
    long_seconds, model = fit(spec.iterations)
    extra = model.summary.numIter - short_model.summary.numIter
    per_iteration = (long_seconds - short_seconds) / extra if extra > 0 else None
    # At tiny sizes the difference drowns in job-scheduling noise: report it as unmeasurable.
    return {"seconds_per_iteration": per_iteration if per_iteration and per_iteration > 0
            else None,
            "iterations_run": model.summary.numIter,
            "end_to_end_seconds": long_seconds, "short_fit_seconds": short_seconds,
            "mean_log_likelihood": model.summary.logLikelihood / spec.n, "_model": model}


def _recomputed_mean_log_likelihood(model: Any, path: str, columns: list[str]) -> float:
    """Mean log-likelihood of MLlib's final model, scored by our log-space kernel.

    MLlib's summary reports the value of its last E-step (before the last M-step), and at
    high D its linear-space densities underflow, so its own figure can be far off.
    """
    rows = model.gaussiansDF.collect()
    params = GaussianParameters.from_covariances(
        np.asarray(model.weights), np.stack([r["mean"].toArray() for r in rows]),
        np.stack([r["cov"].toArray() for r in rows]), "full")
    return streamed_mean(path, columns, lambda x: e_step(x, params)[0])


def _sklearn(x: np.ndarray, spec: BenchmarkSpec, init: GaussianParameters) -> dict[str, Any]:
    import warnings

    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    precisions = np.stack([np.linalg.inv(c) for c in init.covariances])
    gm = SkGaussianMixture(spec.k, max_iter=1, tol=0.0, weights_init=init.weights,
                           means_init=init.means, precisions_init=precisions)
    with warnings.catch_warnings(), phase(
            f"benchmark: scikit-learn, {spec.iterations} iterations", logger):
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        gm._initialize_parameters(x, np.random.RandomState(spec.seed))
        times = []
        log_likelihood = 0.0
        for _ in range(spec.iterations):
            t0 = time.perf_counter()
            log_likelihood, log_resp = gm._e_step(x)
            gm._m_step(x, log_resp)
            times.append(time.perf_counter() - t0)
        total = time.perf_counter() - started
    final = float(gm.score(x))
    return {"seconds_per_iteration": statistics.median(times), "end_to_end_seconds": total,
            "mean_log_likelihood": final, "last_iteration_log_likelihood": log_likelihood}


def _warm_up(spark: SparkSession, df: DataFrame, spec: BenchmarkSpec,
             init: GaussianMixtureModel) -> float:
    # The first Spark jobs of a JVM run interpreted and start the Python workers: several
    # seconds that would land on whichever system is timed first. Every system runs its
    # whole path once on a slice, so the timed runs compare steady states.
    sample = df.limit(min(spec.n, 20_000))
    small = BenchmarkSpec(**{**spec.__dict__, "iterations": 2})
    started = time.perf_counter()
    # Its steps log their own progress: here only its start and its duration.
    logger.info("benchmark: warm-up, every system once on a 20k-row slice ...")
    _, ours = _ours(sample, small, init, "warm-up")
    mllib = _mllib(sample, small, "warm-up")["_model"] if spec.run_mllib else None
    scoring_rounds(sample, ours, mllib, os.path.join(spec.work_dir, "warm_up"), "warm-up")
    seconds = time.perf_counter() - started
    logger.info("benchmark: warm-up took %.2f s", seconds)
    return seconds


def run_benchmark(spark: SparkSession, spec: BenchmarkSpec) -> dict[str, Any]:
    """Run every measurement in ``spark``; return the results (also written as JSON)."""
    path, df, init, mean = benchmark_input(spark, spec)
    # Every row in driver memory only for what needs them at once (scikit-learn, the
    # k-means‖ quality check): a 50M × 10 run would otherwise hold 4 GB several times.
    needs_rows = spec.run_sklearn or (spec.init_quality_seeds and spec.run_mllib)
    x = None
    if needs_rows:
        with phase("benchmark: every row into the driver's memory", logger):
            x = all_rows(path, df.columns)
    results: dict[str, Any] = {"spec": spec.__dict__, "spark_version": spark.version}
    if spec.warm_up:
        results["warm_up_seconds"] = _warm_up(spark, df, spec, init)
    results["ours"], ours_model = _ours(df, spec, init)
    # Read before scoring the full data runs in the same workers (the warm-up scored only a
    # 20k-row slice).
    with phase("benchmark: the Python workers' memory", logger):
        results["worker_memory"] = _worker_memory(spark, df, spec)
    results["scaling"] = _scaling(df, spec, init, results["ours"]["seconds_per_iteration"])
    mllib_model = None
    if spec.run_mllib:
        results["mllib"] = _mllib(df, spec)
        mllib_model = results["mllib"].pop("_model")
        with phase("benchmark: MLlib's model scored in log space", logger):
            results["mllib"]["mean_log_likelihood_recomputed"] = (
                _recomputed_mean_log_likelihood(mllib_model, path, df.columns))
    if spec.run_sklearn:
        results["sklearn"] = _sklearn(x, spec, init.parameters)
    cores = spark.sparkContext.defaultParallelism
    if spec.rounds:
        run_mllib = (lambda where: {k: v for k, v in _mllib(df, spec, where).items()
                                    if k != "_model"}) if spec.run_mllib else None
        rounds = interleaved_rounds(df, spec, init, run_mllib)
        last = rounds.pop("_last_model")
        results["rounds"] = rounds
        with phase("benchmark: the kernel alone, no Spark", logger):
            results["kernel_alone"] = kernel_alone(
                path, df.columns, last, mean,
                min(cores, os.cpu_count() or cores, spec.partitions), spec.iterations)
    if spec.init_quality_seeds and spec.run_mllib:
        results["initialisation_quality"] = initialisation_quality(
            df, spec, spec.init_quality_seeds, x)
    floor_cores = min(cores, os.cpu_count() or cores)
    results["floor"] = gemm_floor(spec.n, spec.d, spec.k, floor_cores)
    results["packed_floor"] = packed_floor(spec.n, spec.d, spec.k, floor_cores)
    if spec.run_scoring:
        results["scoring"] = scoring_rounds(df, ours_model, mllib_model, spec.work_dir)
    results.update(optional_measurements(df, spec, init, path, _fit_ours, x))
    results["ratios"] = ratios(results)
    os.makedirs(spec.work_dir, exist_ok=True)
    with open(os.path.join(spec.work_dir, "benchmark.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    return results
