"""Several things at once in one application: two fits from two threads, a plain Spark job
while a fit iterates (resident tasks hand their slots back, see runtime/slot_sharing)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from spark_gmm import GaussianMixture
from spark_gmm.runtime import resident
from tests.helpers import make_mixture, to_dataframe
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
