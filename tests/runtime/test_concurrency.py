"""Several things at once in one application, and load: two fits from two threads, a plain
Spark job while a fit iterates (resident tasks hand their slots back, see
runtime/slot_sharing), two fit jobs and a score job in separate processes at once, and
thousands of tiny partitions."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.runtime import resident
from spark_gmm.runtime.resident import resident_tasks_setting
from tests.helpers import job_sections, make_mixture, to_dataframe, write_job_config
from tests.job_hooks import recorded_runners

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def frames(spark):
    a, *_ = make_mixture(n=60_000, seed=81, k=3, n_features=5)
    b, *_ = make_mixture(n=60_000, seed=82, k=4, n_features=5)
    return (to_dataframe(spark, a, partitions=4).cache(),
            to_dataframe(spark, b, partitions=4).cache())


def _estimators():
    return (GaussianMixture(k=3, seed=1, maxIter=25, tol=0.0),
            GaussianMixture(k=4, seed=2, maxIter=25, tol=0.0))


def test_two_fits_from_two_threads_equal_the_fits_alone(spark, frames, caplog) -> None:
    for estimator, frame in zip(_estimators(), frames):
        estimator.fit(frame)  # warm: the first fit of a frame pays for caching it
    started = time.perf_counter()
    alone = [estimator.fit(frame) for estimator, frame in zip(_estimators(), frames)]
    one_after_the_other = time.perf_counter() - started

    together: list = [None, None]
    errors: list[BaseException] = []

    def fit(index: int) -> None:
        try:
            together[index] = _estimators()[index].fit(frames[index])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=fit, args=(i,)) for i in (0, 1)]
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="spark_gmm"), recorded_runners() as runners:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
    at_once = time.perf_counter() - started
    assert not errors, errors
    print(f"two fits one after the other {one_after_the_other:.1f} s, from two threads "
          f"{at_once:.1f} s ({at_once / one_after_the_other:.2f}x)")
    for a, b in zip(alone, together):
        np.testing.assert_allclose(b.means, a.means, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b.covariances, a.covariances, rtol=1e-8, atol=1e-10)
        assert b.summary.numIter == a.summary.numIter == 25
    # Neither fit waited for task slots the other held (the 30 s stall of old).
    assert "tasks connected to the driver within" not in caplog.text
    # they shared the slots: each fit's resident job took its share of one slot
    assert len(runners) == 2
    assert sum(runner.counters.resident_jobs.count(1) for runner in runners) >= 2


def test_a_spark_job_is_not_held_up_for_a_whole_fit(spark, frames, monkeypatch,
                                                    caplog) -> None:
    frame = frames[1]
    serving = threading.Event()
    start = resident.ResidentTasks.start

    def started(self) -> None:
        start(self)
        serving.set()

    monkeypatch.setattr(resident.ResidentTasks, "start", started)
    small = spark.range(2000).toDF("id")
    done: dict[str, float] = {}

    def fit() -> None:
        GaussianMixture(k=4, seed=3, maxIter=200, tol=0.0).fit(frame)
        done["fit"] = time.perf_counter()

    with caplog.at_level(logging.INFO, logger="spark_gmm"):
        fitting = threading.Thread(target=fit)
        fitting.start()
        assert serving.wait(120), "the fit's resident tasks never started"
        asked = time.perf_counter()
        assert small.count() == 2000
        done["count"] = time.perf_counter()
        fitting.join(600)
    print(f"a count of 2,000 rows during the fit took {done['count'] - asked:.2f} s; the fit "
          f"ended {done['fit'] - done['count']:.1f} s after it")
    assert done["count"] < done["fit"]  # it did not wait for the fit to end
    assert "hands its" in caplog.text


def test_a_spark_job_is_not_held_up_by_two_fits(spark, frames, monkeypatch, caplog) -> None:
    # Two fits hold one slot each; other work still comes first: both hand their slots back.
    both_serving = threading.Barrier(3)
    start = resident.ResidentTasks.start
    first_starts: set[int] = set()

    def started(self) -> None:
        start(self)
        thread = threading.get_ident()
        if thread not in first_starts:  # each fit's first resident job
            first_starts.add(thread)
            both_serving.wait(120)

    monkeypatch.setattr(resident.ResidentTasks, "start", started)
    small = spark.range(2000).toDF("id")
    done: dict[str, float] = {}

    def fit(index: int) -> None:
        GaussianMixture(k=3 + index, seed=4, maxIter=60, tol=0.0).fit(frames[index])
        done[f"fit {index}"] = time.perf_counter()

    with caplog.at_level(logging.INFO, logger="spark_gmm"):
        fits = [threading.Thread(target=fit, args=(i,)) for i in (0, 1)]
        for thread in fits:
            thread.start()
        both_serving.wait(120)
        asked = time.perf_counter()
        assert small.count() == 2000
        done["count"] = time.perf_counter()
        for thread in fits:
            thread.join(600)
    print(f"a count of 2,000 rows during two fits took {done['count'] - asked:.2f} s; the "
          f"fits ended {done['fit 0'] - done['count']:.1f} s and "
          f"{done['fit 1'] - done['count']:.1f} s after it")
    assert done["count"] < min(done["fit 0"], done["fit 1"])  # it waited for neither fit
    assert caplog.text.count("hands its") >= 1


def _parquet(path, x: np.ndarray) -> str:
    pq.write_table(pa.table({"id": np.arange(len(x)), "a": x[:, 0], "b": x[:, 1],
                             "c": x[:, 2]}), str(path))
    return str(path)


def _job(tmp_path, name: str, data: str, k: int, model_path: str | None = None) -> dict:
    model = {"k": k, "seed": 8, "max_iter": 8, **({"path": model_path} if model_path else {})}
    return job_sections(tmp_path / name, data, model,
                        checkpoint={"path": str(tmp_path / name / "em.json")},
                        spark={"master": "local[2]",
                               "conf": {"spark.default.parallelism": "4"}})


def _java_children(pid: int) -> bool:
    """Whether the process ``pid`` has a running JVM child (its Spark driver gateway)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as handle:
                command = handle.read().strip()
        except OSError:
            continue
        if int(fields[1]) == pid and command == "java":
            return True
    return False


def _labels(path: str) -> np.ndarray:
    return pq.read_table(path).to_pandas().sort_values("id")["prediction"].to_numpy()


def test_two_fits_and_a_score_at_the_same_time(spark, tmp_path) -> None:
    data_a = _parquet(tmp_path / "a.parquet", make_mixture(n=3000, seed=51, k=3)[0])
    data_b = _parquet(tmp_path / "b.parquet", make_mixture(n=3000, seed=52, k=4)[0])
    # references, one at a time in this process
    reference_a = run_fit(spark, build_config(_job(tmp_path, "reference_a", data_a, 3)))
    reference_b = run_fit(spark, build_config(_job(tmp_path, "reference_b", data_b, 4)))

    jobs = {
        "fit_a": ("fit", _job(tmp_path, "fit_a", data_a, 3)),
        "fit_b": ("fit", _job(tmp_path, "fit_b", data_b, 4)),
        # scores data_a with the reference model while the fits run
        "score": ("score", _job(tmp_path, "score", data_a, 3,
                                model_path=str(tmp_path / "reference_a" / "model"))),
    }
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", "spark_gmm.cli", command, "--config",
             write_job_config(str(tmp_path / f"{name}.toml"), values)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, (command, values) in jobs.items()
    }
    most_jvms_at_once = 0
    while any(p.poll() is None for p in running.values()):
        if most_jvms_at_once < 3:  # scanning /proc costs CPU the jobs need; stop once seen
            most_jvms_at_once = max(most_jvms_at_once,
                                    sum(_java_children(p.pid) for p in running.values()))
        time.sleep(0.5)
    outputs = {name: p.communicate()[0] for name, p in running.items()}
    for name, process in running.items():
        assert process.returncode == 0, f"{name}:\n{outputs[name][-3000:]}"
    assert most_jvms_at_once == 3, "the three jobs did not overlap"

    for name, reference in (("fit_a", reference_a), ("fit_b", reference_b)):
        artifact = jobs[name][1]["model"]["path"]
        with open(os.path.join(artifact, "diagnostics.json")) as handle:
            diagnostics = json.load(handle)
        np.testing.assert_allclose(diagnostics["log_likelihood_history"],
                                   reference["log_likelihood_history"], rtol=1e-10)
        fitted = GaussianMixtureModel.load(os.path.join(artifact, "model"))
        np.testing.assert_allclose(fitted.means, reference["original_units"]["means"],
                                   rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(fitted.covariances,
                                   reference["original_units"]["covariances"],
                                   rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(_labels(str(tmp_path / "fit_a" / "labelled")),
                                  _labels(str(tmp_path / "reference_a" / "labelled")))
    np.testing.assert_array_equal(_labels(str(tmp_path / "score" / "labelled")),
                                  _labels(str(tmp_path / "reference_a" / "labelled")))


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith(field)).split()[1])


def _driver_peak_bytes(action) -> tuple[object, int]:
    """The action's result and how far this (driver) process's peak RSS rose above its RSS
    before it. Linux resets the peak (VmHWM) on writing 5 to clear_refs; unlike tracemalloc
    this costs nothing per allocation (tracemalloc tripled the 2,000-task passes)."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _status_kb("VmRSS:")
    result = action()
    return result, (_status_kb("VmHWM:") - before) * 1024


# As Spark jobs every pass is one task per partition (~20 ms each here): 300 partitions show
# the treeReduce bound as well as 2,000 (a flat reduce would bring 300 partials, above the
# bound) at a sixth of the suite's time.
@pytest.mark.parametrize(("resident_tasks", "partitions"), [(True, 2000), (False, 300)])
def test_thousands_of_partitions(spark, resident_tasks: bool, partitions: int) -> None:
    x, *_ = make_mixture(n=4000, seed=61, k=8, n_features=30)
    # Every pass is thousands of tasks, so both fits take one EM step from the same start
    # (partition invariance of the random start itself is tested with 1, 3 and 16 partitions).
    start = GaussianMixture(k=8, seed=7, maxIter=1, tol=0.0, initMode="random").fit(
        to_dataframe(spark, x, partitions=2))

    def fit(df):
        return GaussianMixture(k=8, maxIter=1, tol=0.0).setInitialModel(start).fit(df)

    few = fit(to_dataframe(spark, x, partitions=2))
    many_df = to_dataframe(spark, x, partitions=partitions)
    assert many_df.rdd.getNumPartitions() == partitions
    # Resident tasks coalesce the partitions into one task per slot; as Spark jobs, every
    # pass is one task per partition, merged by treeReduce.
    from spark_gmm.bench.probes import JvmHeapPeak

    heap = JvmHeapPeak(spark.sparkContext._jvm)
    with resident_tasks_setting(spark, resident_tasks):
        many, fit_peak = _driver_peak_bytes(lambda: fit(many_df))
    heap_peak = heap.bytes()
    passes = (many.runRecord.residentPasses, many.runRecord.jobPasses)
    assert passes == ((2, 0) if resident_tasks else (0, 2))  # 1 iteration + final statistics
    np.testing.assert_allclose(many.summary.logLikelihoodHistory,
                               few.summary.logLikelihoodHistory, rtol=1e-10)
    np.testing.assert_allclose(many.summary.logLikelihood, few.summary.logLikelihood,
                               rtol=1e-10)
    np.testing.assert_allclose(many.weights, few.weights, rtol=1e-10)
    np.testing.assert_allclose(many.means, few.means, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(many.covariances, few.covariances, rtol=1e-8, atol=1e-10)

    # Each partition's statistics hold K·D² second moments. A flat reduce would bring all
    # of them to the driver at once (118 MB for 2,000 when measured with tracemalloc);
    # treeReduce brings ~sqrt(partitions) (22–45), and resident tasks one per task (2).
    one_partial = 8 * 30 * 30 * 8
    logger.warning("%d partitions (resident tasks %s): driver Python peak %.1f MB, driver JVM "
                   "heap peak %.0f MB during the fit (one partition's statistics: %.2f MB)",
                   partitions, resident_tasks, fit_peak / 1e6, heap_peak / 1e6,
                   one_partial / 1e6)
    print(f"{partitions} partitions (resident tasks {resident_tasks}): driver JVM heap peak "
          f"{heap_peak / 1e6:.0f} MB, driver Python peak {fit_peak / 1e6:.1f} MB")
    assert fit_peak < 200 * one_partial
