"""Resident tasks: one Spark job serves every EM pass; when it cannot, the fit goes back to one
job per pass from the same state and gives the same model."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from functools import partial

import numpy as np
import pytest

from spark_gmm import GaussianMixture
from spark_gmm.kernels import GaussianParameters, block_statistics
from spark_gmm.runtime import resident, resident_runner, slot_sharing
from spark_gmm.runtime.ingest import feature_moments, features_array, store_blocks
from spark_gmm.runtime.passes import fold_in_task
from spark_gmm.runtime.requests import StatisticsRequest
from spark_gmm.runtime.resident import ResidentTasks, resident_tasks_setting
from spark_gmm.runtime.resident_runner import ResidentPassRunner
from tests.helpers import make_mixture, to_dataframe
from tests.job_hooks import HangInResidentTask, install, recorded_runners


class Fitted:
    """A fitted model and the pass runner of its fit (whose counters the tests read)."""

    def __init__(self, model, runner) -> None:
        self.model, self.runner = model, runner
        self.counters = runner.counters
        # (passes served by resident tasks, passes run as Spark jobs)
        self.passes = (self.counters.resident_passes, self.counters.job_passes)


def _fit(spark, caplog, df, resident_tasks: bool, **params) -> Fitted:
    caplog.clear()
    with (resident_tasks_setting(spark, resident_tasks), recorded_runners() as runners,
          caplog.at_level(logging.INFO, logger="spark_gmm")):
        model = GaussianMixture(**params).fit(df)
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []  # the job has ended
    [runner] = runners
    assert isinstance(runner, ResidentPassRunner) == resident_tasks
    return Fitted(model, runner)


def _assert_same_model(first: Fitted, second: Fitted, rtol: float = 1e-10) -> None:
    a, b = first.model, second.model
    np.testing.assert_allclose(a.summary.logLikelihoodHistory, b.summary.logLikelihoodHistory,
                               rtol=1e-12)
    np.testing.assert_allclose(a.weights, b.weights, rtol=rtol, atol=1e-14)
    np.testing.assert_allclose(a.means, b.means, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=rtol, atol=1e-12)
    assert a.summary.clusterSizes == b.summary.clusterSizes


@pytest.fixture(scope="module")
def weighted_df(spark):
    x, *_ = make_mixture(n=6000, seed=43, k=3)
    weights = np.random.default_rng(4).uniform(0.5, 2.0, size=len(x))
    return to_dataframe(spark, x, partitions=5, extra={"w": weights})


def test_resident_fit_equals_one_job_per_pass(spark, caplog, weighted_df) -> None:
    params = {"k": 3, "seed": 5, "maxIter": 8, "tol": 0.0, "initMode": "random", "nInit": 2,
              "weightCol": "w"}
    served = _fit(spark, caplog, weighted_df, True, **params)
    # 5 partitions on 2 slots: two tasks, each folding the partitions of its executor
    assert served.counters.resident_jobs == [2]
    # the initial sample (both restarts), 8 iterations, the final statistics
    assert served.passes == (10, 0)
    by_jobs = _fit(spark, caplog, weighted_df, False, **params)
    assert by_jobs.passes == (0, 10) and by_jobs.counters.resident_jobs == []
    _assert_same_model(served, by_jobs)


def test_partitions_unreadable_where_resident_tasks_run_are_written_again(
        spark, caplog, monkeypatch, weighted_df) -> None:
    params = {"k": 3, "seed": 6, "maxIter": 5, "tol": 0.0, "initMode": "k-means++"}
    undisturbed = _fit(spark, caplog, weighted_df, False, **params)
    original = ResidentPassRunner.__enter__
    recomputed: list[int] = []

    def losing_the_files_first(self):
        for stored in self.store.stored_partitions():
            os.unlink(stored.features_path)
        recomputed.append(self.store.recomputed_partitions)
        return original(self)

    monkeypatch.setattr(ResidentPassRunner, "__enter__", losing_the_files_first)
    disturbed = _fit(spark, caplog, weighted_df, True, **params)
    assert "are not readable where their resident task runs" in caplog.text
    # the cluster changed under the first resident job, and under the one started again at
    # the first pass boundary (before that pass wrote the files again): two restarts spent
    sharing = disturbed.runner.sharing
    assert sharing.restarts_left == slot_sharing.MAX_RESIDENT_RESTARTS - 2
    assert not sharing.given_up
    # the sample, the hard assignment of its k-means++ centres, 5 iterations, the final pass:
    # the first as a Spark job, which recomputed all five partitions from the input and
    # wrote them again; a new resident job served the rest
    assert disturbed.passes == (7, 1)
    assert recomputed == [0] and disturbed.runner.store.recomputed_partitions == 5
    assert disturbed.counters.resident_jobs == [2]
    _assert_same_model(disturbed, undisturbed)


def test_a_cluster_that_keeps_changing_ends_in_one_job_per_pass(
        spark, caplog, monkeypatch, weighted_df) -> None:
    params = {"k": 3, "seed": 9, "maxIter": 7, "tol": 0.0}
    undisturbed = _fit(spark, caplog, weighted_df, False, **params)
    original = ResidentPassRunner._start
    starts: list[int | None] = []

    def losing_the_files_every_time(self, *given):
        for stored in self.store.stored_partitions():
            if os.path.exists(stored.features_path):  # a job pass may not have written it
                os.unlink(stored.features_path)
        started = original(self, *given)
        starts.append(None if started is None else started.n_tasks)
        return started

    monkeypatch.setattr(ResidentPassRunner, "_start", losing_the_files_every_time)
    disturbed = _fit(spark, caplog, weighted_df, True, **params)
    budget = slot_sharing.MAX_RESIDENT_RESTARTS
    assert disturbed.runner.sharing.restarts_left == 0 and disturbed.runner.sharing.given_up
    # the first start and every restart failed: nothing by resident tasks, and no start
    # after the budget was spent
    assert starts == [None] * (budget + 1) and disturbed.counters.resident_jobs == []
    assert disturbed.passes == (0, undisturbed.counters.job_passes)
    assert caplog.text.count("are not readable where their resident task runs") == budget + 1
    _assert_same_model(disturbed, undisturbed)


def test_growth_onto_executors_without_the_rows_keeps_the_smaller_job(
        spark, caplog, monkeypatch, weighted_df) -> None:
    # One slot when the fit starts, two from the next pass boundary on (an executor joined);
    # the grown job's tasks find no files, as on an executor of another host.
    params = {"k": 3, "seed": 8, "maxIter": 6, "tol": 0.0}
    undisturbed = _fit(spark, caplog, weighted_df, False, **params)
    slots = iter([1])
    monkeypatch.setattr(slot_sharing, "slot_count", lambda sc: next(slots, 2))
    original = ResidentPassRunner._start
    starts: list[int | None] = []

    def losing_the_files_when_growing(self, *given):
        starts.append(given[0] if given else None)
        if len(starts) == 2:
            for stored in self.store.stored_partitions():
                os.unlink(stored.features_path)
        return original(self, *given)

    monkeypatch.setattr(ResidentPassRunner, "_start", losing_the_files_when_growing)
    grown = _fit(spark, caplog, weighted_df, True, **params)
    assert "the resident job grows from 1 to 2 tasks" in caplog.text
    assert starts[:2] == [None, 2]  # the first start, then the growth to two tasks
    assert grown.runner.sharing.task_cap == 1 and not grown.runner.sharing.given_up
    # the failed growth's pass ran as a job (rewriting the files); one task served the rest
    assert grown.counters.resident_jobs == [1, 1]
    assert grown.passes[1] == 1 and grown.passes[0] >= 6, grown.passes
    _assert_same_model(grown, undisturbed)


def test_driver_unreachable_from_the_tasks_goes_back_to_jobs(
        spark, caplog, monkeypatch, weighted_df) -> None:
    params = {"k": 3, "seed": 7, "maxIter": 4, "tol": 0.0}
    undisturbed = _fit(spark, caplog, weighted_df, False, **params)
    # The tasks are told an address where nothing listens (the socket is on 127.0.0.1).
    monkeypatch.setattr(resident, "_driver_address", lambda sc: ("127.0.0.2", "127.0.0.1"))
    disturbed = _fit(spark, caplog, weighted_df, True, **params)
    assert ("resident tasks given up, one Spark job per pass from now: the resident job ended "
            "(its tasks could not connect to the driver at 127.0.0.2:") in caplog.text
    # every pass of k-means|| and EM ran as a Spark job, as in the fit without resident tasks
    passes = disturbed.passes
    assert passes == (0, undisturbed.counters.job_passes) and passes[1] >= 4 + 1 + 5
    _assert_same_model(disturbed, undisturbed)


def test_too_few_free_slots_time_out_and_go_back_to_jobs(
        spark, caplog, monkeypatch, weighted_df) -> None:
    params = {"k": 3, "seed": 8, "maxIter": 3, "tol": 0.0}
    undisturbed = _fit(spark, caplog, weighted_df, False, **params)
    # Three tasks on two slots: the third cannot start while the first two wait for it.
    monkeypatch.setattr(slot_sharing, "slot_count", lambda sc: 3)
    monkeypatch.setattr(resident, "CONNECT_SECONDS", 3.0)
    disturbed = _fit(spark, caplog, weighted_df, True, **params)
    assert "2 of 3 tasks connected to the driver within 3 s" in caplog.text
    passes = disturbed.passes
    assert passes == (0, undisturbed.counters.job_passes) and passes[1] >= 3 + 1 + 5
    _assert_same_model(disturbed, undisturbed)


def test_a_pass_too_large_for_the_driver_runs_as_a_job_between_resident_jobs(
        spark, caplog, monkeypatch, weighted_df) -> None:
    # k-means++ samples 5,000 rows per component in each task: 2 tasks x 15,000 rows x
    # (3 values + a key) x 8 bytes = 0.96 MB could reach the driver at once; the limit is
    # made 0.5 MB.
    params = {"k": 3, "seed": 9, "maxIter": 5, "tol": 0.0, "initMode": "k-means++"}
    by_jobs = _fit(spark, caplog, weighted_df, False, **params)
    monkeypatch.setattr(resident_runner, "MAX_RESIDENT_RESULT_BYTES", 1 << 19)
    served = _fit(spark, caplog, weighted_df, True, **params)
    assert "the sample pass runs as a Spark job: 2 tasks would send the driver" in caplog.text
    assert served.counters.resident_jobs == [2, 2]  # before and after
    # the sample as a job; the start's hard assignment, 5 iterations, the final, resident
    assert served.passes == (7, 1)
    _assert_same_model(served, by_jobs)


def test_connections_without_the_secret_are_refused(spark, caplog) -> None:
    x, *_ = make_mixture(n=3000, seed=44, k=2)
    df = to_dataframe(spark, x, partitions=2)
    store = store_blocks(df, features_array(df, "features"), None)
    moments = feature_moments(store.stored_partitions())
    center, variance = moments.mean, moments.variance
    mixture = GaussianParameters.from_covariances(
        [0.5, 0.5], x[:2] - center, np.stack([np.diag(variance)] * 2), "full")
    tasks = ResidentTasks(store, partial(fold_in_task, "resident", center, None), 2)
    try:
        tasks.start()
        intruder = socket.create_connection(tasks._listener.getsockname())
        intruder.sendall(os.urandom(32))  # not HMAC(secret, nonce)
        with caplog.at_level(logging.WARNING, logger="spark_gmm"):
            answers = tasks.request(StatisticsRequest((mixture,), False, True))
        assert "refused a connection" in caplog.text and "secret" in caplog.text
        assert intruder.recv(1024, socket.MSG_WAITALL)[32:] == b""  # nonce, then closed
        intruder.close()
    finally:
        tasks.close()
        store.close()
    _assert_statistics_of_all_rows(answers, x, mixture, center)


def _assert_statistics_of_all_rows(answers, x, mixture, center) -> None:
    total = answers[0][0].merge(answers[1][0])
    expected = block_statistics(x, None, [mixture], center, False, True)[0]
    assert total.row_count == 3000 and total.assigned.tolist() == expected.assigned.tolist()
    assert total.log_likelihood == pytest.approx(expected.log_likelihood, rel=1e-12)
    np.testing.assert_allclose(total.resp_sum, expected.resp_sum, rtol=1e-12)
    np.testing.assert_allclose(total.first, expected.first, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(total.second, expected.second, rtol=1e-10)


def test_forged_lengths_are_refused_and_the_pass_goes_on(spark, caplog) -> None:
    from spark_gmm.runtime.wire import answer_challenge

    x, *_ = make_mixture(n=3000, seed=45, k=2)
    df = to_dataframe(spark, x, partitions=2)
    store = store_blocks(df, features_array(df, "features"), None)
    center = feature_moments(store.stored_partitions()).mean
    mixture = GaussianParameters.from_covariances(
        [0.5, 0.5], x[:2] - center, np.stack([np.eye(3)] * 2), "full")
    tasks = ResidentTasks(store, partial(fold_in_task, "resident", center, None), 2)
    huge_hello = (b'{"kind": "hello", "meta": {"task": 0}, "values": [], '
                  b'"payload": 1099511627776}')  # a terabyte announced
    forged = b"GMM1" + len(huge_hello).to_bytes(4, "big") + huge_hello
    peers: dict[str, socket.socket] = {}

    def intrude(address) -> None:
        # without the secret: its header is read as a failed answer to the challenge
        peers["stranger"] = socket.create_connection(address)
        peers["stranger"].sendall(forged)
        # with the secret (a peer that passed the challenge): the length is checked first
        peers["insider"] = socket.create_connection(address)
        answer_challenge(peers["insider"], tasks._secret)
        peers["insider"].sendall(forged)

    try:
        tasks.start()
        # The driver accepts connections while it waits for a pass's answers.
        intruder = threading.Thread(target=intrude, args=(tasks._listener.getsockname(),))
        intruder.start()
        with caplog.at_level(logging.WARNING, logger="spark_gmm"):
            deadline = time.monotonic() + 30
            while len(caplog.records) < 2 and time.monotonic() < deadline:
                answers = tasks.request(StatisticsRequest((mixture,), False, True))
        intruder.join(30)
        assert "does not hold this fit's secret" in caplog.text
        assert "announces 1099511627776 payload bytes" in caplog.text
        # the driver closed both (a recv on an open socket would time out): the stranger
        # got only the challenge's nonce, the insider nothing after the challenge
        for name, left_over in (("stranger", 32), ("insider", 0)):
            peers[name].settimeout(10)
            assert len(peers[name].recv(1 << 16, socket.MSG_WAITALL)) == left_over
            peers[name].close()
    finally:
        tasks.close()
        store.close()
    _assert_statistics_of_all_rows(answers, x, mixture, center)


def test_a_task_hung_in_a_pass_sends_it_back_to_a_spark_job(spark, caplog, monkeypatch,
                                                            weighted_df) -> None:
    from spark_gmm.runtime.resident import PASS_TIMEOUT_CONF

    params = {"k": 3, "seed": 6, "maxIter": 4, "tol": 0.0, "initMode": "random",
              "weightCol": "w"}
    by_jobs = _fit(spark, caplog, weighted_df, False, **params)
    install(monkeypatch.setattr, task_hook=HangInResidentTask(120.0))
    spark.conf.set(PASS_TIMEOUT_CONF, "2")
    try:
        hung = _fit(spark, caplog, weighted_df, True, **params)
    finally:
        spark.conf.unset(PASS_TIMEOUT_CONF)
    assert "did not answer within 2 s" in caplog.text
    assert hung.runner.sharing.given_up
    # the first resident pass hung: it and every pass after it ran as Spark jobs
    assert hung.passes == (0, 6) and hung.counters.resident_jobs == [2]
    _assert_same_model(hung, by_jobs)
