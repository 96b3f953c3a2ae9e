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
from spark_gmm.runtime import resident, statistics_pass
from spark_gmm.runtime.ingest import feature_moments, features_array, store_blocks
from spark_gmm.runtime.resident import ResidentTasks, resident_tasks_setting
from spark_gmm.runtime.statistics_pass import DistributedStatistics
from tests.helpers import make_mixture, to_dataframe


def _fit(spark, caplog, df, resident_tasks: bool, **params):
    """The fitted model and (passes served by resident tasks, passes run as Spark jobs)."""
    caplog.clear()
    with (resident_tasks_setting(spark, resident_tasks),
          caplog.at_level(logging.INFO, logger="spark_gmm")):
        model = GaussianMixture(**params).fit(df)
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []  # the job has ended
    return model, (model.summary.residentPasses, model.summary.jobPasses)


def _assert_same_model(a, b, rtol: float = 1e-10) -> None:
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
    served, (resident_passes, job_passes) = _fit(spark, caplog, weighted_df, True, **params)
    # 5 partitions on 2 slots: two tasks, each folding the partitions of its executor
    assert "2 resident tasks serve the EM passes" in caplog.text
    # the initial sample (both restarts), 8 iterations, the final statistics
    assert (resident_passes, job_passes) == (10, 0)
    by_jobs, passes = _fit(spark, caplog, weighted_df, False, **params)
    assert passes == (0, 10)
    _assert_same_model(served, by_jobs)


def test_partitions_unreadable_where_resident_tasks_run_are_written_again(
        spark, caplog, monkeypatch, weighted_df) -> None:
    params = {"k": 3, "seed": 6, "maxIter": 5, "tol": 0.0, "initMode": "k-means++"}
    undisturbed, _ = _fit(spark, caplog, weighted_df, False, **params)
    original = DistributedStatistics.resident
    recomputed: list[int] = []

    def losing_the_files_first(self, n_models, n_components):
        for stored in self.store.stored_partitions():
            os.unlink(stored.features_path)
        recomputed.append(self.store.recomputed_partitions)
        return original(self, n_models, n_components)

    monkeypatch.setattr(DistributedStatistics, "resident", losing_the_files_first)
    disturbed, passes = _fit(spark, caplog, weighted_df, True, **params)
    assert "are not readable where their resident task runs" in caplog.text
    assert "resident tasks start again" in caplog.text
    # the sample, the hard assignment of its k-means++ centres, 5 iterations, the final pass:
    # the first as a Spark job, which recomputed all five partitions from the input and
    # wrote them again; a new resident job served the rest
    assert passes == (7, 1)
    assert recomputed == [0] and "5 of 5 partitions" in caplog.text
    assert caplog.text.count("2 resident tasks serve the EM passes") == 1
    _assert_same_model(disturbed, undisturbed)


def test_a_cluster_that_keeps_changing_ends_in_one_job_per_pass(
        spark, caplog, monkeypatch, weighted_df) -> None:
    params = {"k": 3, "seed": 9, "maxIter": 7, "tol": 0.0}
    undisturbed, _ = _fit(spark, caplog, weighted_df, False, **params)
    original = DistributedStatistics._start_resident

    def losing_the_files_every_time(self, *shape, **given):
        for stored in self.store.stored_partitions():
            if os.path.exists(stored.features_path):  # a job pass may not have written it
                os.unlink(stored.features_path)
        return original(self, *shape, **given)

    monkeypatch.setattr(DistributedStatistics, "_start_resident", losing_the_files_every_time)
    disturbed, passes = _fit(spark, caplog, weighted_df, True, **params)
    budget = statistics_pass.MAX_RESIDENT_RESTARTS
    assert caplog.text.count("resident tasks start again") == budget
    assert caplog.text.count("resident tasks given up") == 1
    # the first start and every restart failed: nothing by resident tasks, and no start
    # after the budget was spent
    assert passes == (0, undisturbed.summary.jobPasses)
    assert caplog.text.count("are not readable where their resident task runs") == budget + 1
    _assert_same_model(disturbed, undisturbed)


def test_growth_onto_executors_without_the_rows_keeps_the_smaller_job(
        spark, caplog, monkeypatch, weighted_df) -> None:
    # One slot when the fit starts, two from the next pass boundary on (an executor joined);
    # the grown job's tasks find no files, as on an executor of another host.
    params = {"k": 3, "seed": 8, "maxIter": 6, "tol": 0.0}
    undisturbed, _ = _fit(spark, caplog, weighted_df, False, **params)
    slots = iter([1])
    monkeypatch.setattr(statistics_pass, "slot_count", lambda sc: next(slots, 2))
    original = DistributedStatistics._start_resident
    starts: list[int] = []

    def losing_the_files_when_growing(self, *shape, **given):
        starts.append(len(starts))
        if len(starts) == 2:
            for stored in self.store.stored_partitions():
                os.unlink(stored.features_path)
        return original(self, *shape, **given)

    monkeypatch.setattr(DistributedStatistics, "_start_resident", losing_the_files_when_growing)
    grown, passes = _fit(spark, caplog, weighted_df, True, **params)
    assert "the resident job grows from 1 to 2 tasks" in caplog.text
    assert "could not grow" in caplog.text and "it keeps to 1 tasks" in caplog.text
    # the failed growth's pass ran as a job (rewriting the files); one task served the rest
    assert caplog.text.count("1 resident tasks serve the EM passes") == 2
    assert passes[1] == 1 and passes[0] >= 6, passes
    _assert_same_model(grown, undisturbed)


def test_driver_unreachable_from_the_tasks_goes_back_to_jobs(
        spark, caplog, monkeypatch, weighted_df) -> None:
    params = {"k": 3, "seed": 7, "maxIter": 4, "tol": 0.0}
    undisturbed, _ = _fit(spark, caplog, weighted_df, False, **params)
    # The tasks are told an address where nothing listens (the socket is on 127.0.0.1).
    monkeypatch.setattr(resident, "_driver_address", lambda sc: ("127.0.0.2", "127.0.0.1"))
    disturbed, passes = _fit(spark, caplog, weighted_df, True, **params)
    assert ("resident tasks given up, one Spark job per pass from now: the resident job ended "
            "(its tasks could not connect to the driver at 127.0.0.2:") in caplog.text
    # every pass of k-means|| and EM ran as a Spark job, as in the fit without resident tasks
    assert passes == (0, undisturbed.summary.jobPasses) and passes[1] >= 4 + 1 + 5
    _assert_same_model(disturbed, undisturbed)


def test_too_few_free_slots_time_out_and_go_back_to_jobs(
        spark, caplog, monkeypatch, weighted_df) -> None:
    params = {"k": 3, "seed": 8, "maxIter": 3, "tol": 0.0}
    undisturbed, _ = _fit(spark, caplog, weighted_df, False, **params)
    # Three tasks on two slots: the third cannot start while the first two wait for it.
    monkeypatch.setattr(statistics_pass, "slot_count", lambda sc: 3)
    monkeypatch.setattr(resident, "CONNECT_SECONDS", 3.0)
    disturbed, passes = _fit(spark, caplog, weighted_df, True, **params)
    assert "2 of 3 tasks connected to the driver within 3 s" in caplog.text
    assert passes == (0, undisturbed.summary.jobPasses) and passes[1] >= 3 + 1 + 5
    _assert_same_model(disturbed, undisturbed)


def test_a_pass_too_large_for_the_driver_runs_as_a_job_between_resident_jobs(
        spark, caplog, monkeypatch, weighted_df) -> None:
    # k-means++ samples 5,000 rows per component in each task: 2 tasks x 15,000 rows x
    # (3 values + a key) x 8 bytes = 0.96 MB could reach the driver at once; the limit is
    # made 0.5 MB.
    params = {"k": 3, "seed": 9, "maxIter": 5, "tol": 0.0, "initMode": "k-means++"}
    by_jobs, _ = _fit(spark, caplog, weighted_df, False, **params)
    monkeypatch.setattr(statistics_pass, "_MAX_RESIDENT_RESULT_BYTES", 1 << 19)
    served, passes = _fit(spark, caplog, weighted_df, True, **params)
    assert "the sample pass runs as a Spark job: 2 tasks would send the driver" in caplog.text
    assert caplog.text.count("2 resident tasks serve the EM passes") == 2  # before and after
    # the sample as a job; the start's hard assignment, 5 iterations, the final, resident
    assert passes == (7, 1)
    _assert_same_model(served, by_jobs)


def test_connections_without_the_secret_are_refused(spark, caplog) -> None:
    x, *_ = make_mixture(n=3000, seed=44, k=2)
    df = to_dataframe(spark, x, partitions=2)
    store = store_blocks(df, features_array(df, "features"), None)
    moments = feature_moments(store.stored_partitions())
    center, variance = moments.mean, moments.variance
    mixture = GaussianParameters.from_covariances(
        [0.5, 0.5], x[:2] - center, np.stack([np.diag(variance)] * 2), "full")
    tasks = ResidentTasks(store, partial(statistics_pass._answer_request, center), 2)
    try:
        tasks.start()
        intruder = socket.create_connection(tasks._listener.getsockname())
        intruder.sendall(os.urandom(32))  # not HMAC(secret, nonce)
        with caplog.at_level(logging.WARNING, logger="spark_gmm"):
            answers = tasks.request([mixture], {"kind": "statistics", "hard_assignment": False,
                                                "count_assignments": True})
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
    tasks = ResidentTasks(store, partial(statistics_pass._answer_request, center), 2)
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
                answers = tasks.request([mixture], {"kind": "statistics",
                                                    "hard_assignment": False,
                                                    "count_assignments": True})
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
    by_jobs, _ = _fit(spark, caplog, weighted_df, False, **params)
    monkeypatch.setattr(statistics_pass, "TEST_HANG_SECONDS", 120.0)
    spark.conf.set(PASS_TIMEOUT_CONF, "2")
    try:
        hung, (resident_passes, job_passes) = _fit(spark, caplog, weighted_df, True, **params)
    finally:
        spark.conf.unset(PASS_TIMEOUT_CONF)
    assert "did not answer within 2 s" in caplog.text
    assert "resident tasks given up" in caplog.text
    # the first resident pass hung: it and every pass after it ran as Spark jobs
    assert (resident_passes, job_passes) == (0, 6)
    _assert_same_model(hung, by_jobs)
