"""Every task slot busy whatever the input's partitioning (spark_gmm.runtime.balance): the
layout of slices, the rebalance rule, and fits of a single-row-group Parquet file read as
partitions of [N, 0] rows, whose passes the counters show spread over both slots, with the
model of the same rows evenly partitioned."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import spark_gmm.fit.driver as driver
from spark_gmm import GaussianMixture
from spark_gmm.runtime import balance
from spark_gmm.runtime.balance import Slice, plan_layout, rebalance_partitions
from spark_gmm.runtime.block_store import StoredPartition
from spark_gmm.runtime.passes import JobPassRunner
from spark_gmm.runtime.resident import resident_tasks_setting
from tests.helpers import make_mixture, to_dataframe
from tests.job_hooks import recorded_runners

N = 4000
PARAMS = {"k": 3, "seed": 5, "maxIter": 6, "tol": 0.0, "initMode": "random", "nInit": 2}


def _stored(rows: list[int], hosts: list[str] | None = None) -> list[StoredPartition]:
    hosts = hosts or ["a"] * len(rows)
    return [StoredPartition(p, f"/d/{p}", n, 3, False, host=h)
            for p, (n, h) in enumerate(zip(rows, hosts))]


# --- the layout, without Spark ---------------------------------------------------------

def test_a_partition_holding_every_row_is_cut_into_one_slice_per_task() -> None:
    layout = plan_layout(_stored([4000, 0]), 2)
    assert layout.tasks == ((Slice(0, 0, 2000),), (Slice(0, 2000, 4000),))
    assert layout.task_rows == [2000, 2000]
    # both tasks are placed where partition 0's handle is: partitions 0 and 1 of the
    # product with range(2)
    assert layout.width == 2 and layout.indices == (0, 1)


def test_uneven_partitions_share_their_rows_out_evenly() -> None:
    layout = plan_layout(_stored([600_000, 400_000]), 2)
    assert layout.tasks == ((Slice(0, 0, 500_000),),
                            (Slice(0, 500_000, 600_000), Slice(1, 0, 400_000)))
    # the second task is placed with its larger slice, partition 1
    assert layout.width == 1 and layout.indices == (0, 1)


def test_no_host_gets_more_tasks_than_its_share_of_the_slots() -> None:
    # 8 tasks on 2 hosts of (taken to be) 4 slots each: 700k rows on one host, 300k on the
    # other; more than 4 tasks on the first would wait for its slots, then run on the other,
    # where its files are not
    layout = plan_layout(_stored([700_000, 300_000], ["a", "b"]), 8, 2)
    assert layout.task_rows == [175_000] * 4 + [75_000] * 4
    # every row on one of two hosts (too few to store again): its 4 slots share them
    layout = plan_layout(_stored([1_000_000, 0], ["a", "b"]), 8, 2)
    assert layout.task_rows == [250_000] * 4 and layout.width == 4
    # on one host, all 8 tasks
    assert plan_layout(_stored([1_000_000, 0]), 8).task_rows == [125_000] * 8


def test_whole_partitions_serve_when_they_are_as_even() -> None:
    assert plan_layout(_stored([5000] * 16), 2) is None  # 8 and 8
    assert plan_layout(_stored([5000] * 5), 2) is not None  # 3 and 2: 1.2x even
    # too few rows for more than one task of MIN_TASK_ROWS
    assert plan_layout(_stored([1500, 0]), 8) is None
    assert plan_layout(_stored([0, 0]), 2) is None


@pytest.mark.parametrize("seed", range(6))
def test_slices_cover_every_row_once_with_near_equal_rows_per_host(seed: int) -> None:
    rng = random.Random(seed)
    rows = [rng.choice([0, rng.randrange(1, 50_000), rng.randrange(100_000, 400_000)])
            for _ in range(rng.randrange(1, 9))]
    rows[0] = max(rows[0], 5000)
    hosts = [rng.choice("ab") for _ in rows]
    n_tasks = rng.randrange(2, 13)
    layout = plan_layout(_stored(rows, hosts), n_tasks)
    if layout is None:
        return
    covered = {p: np.zeros(n, dtype=int) for p, n in enumerate(rows)}
    for task in layout.tasks:
        assert len({hosts[piece.partition] for piece in task}) == 1  # one host per task
        for piece in task:
            covered[piece.partition][piece.start:piece.stop] += 1
    assert all((c == 1).all() for c in covered.values())
    assert len(layout.tasks) <= n_tasks
    for host in "ab":
        on = [sum(s.rows for s in task) for task in layout.tasks
              if hosts[task[0].partition] == host]
        if on:
            assert max(on) - min(on) <= 1
    # every task has its own partition of the placing RDD, anchored at one of its slices
    assert len(set(layout.indices)) == len(layout.tasks)
    for index, task in zip(layout.indices, layout.tasks):
        assert index // layout.width in {piece.partition for piece in task}


def test_rebalance_only_when_a_host_holds_more_than_its_share() -> None:
    one_host = _stored([200_000, 0])
    assert rebalance_partitions(one_host, 1, 2) is None  # its tasks share the rows
    assert rebalance_partitions(one_host, 2, 2) == 2  # 200k on one of two hosts
    assert rebalance_partitions(one_host, 2, 8) == 8
    # 150k and 100k on two hosts: 1.2x the mean, under the ratio
    assert rebalance_partitions(_stored([150_000, 100_000], ["a", "b"]), 2, 2) is None
    assert rebalance_partitions(_stored([160_000, 40_000], ["a", "b"]), 2, 2) == 2
    # too few rows to be worth a shuffle
    assert rebalance_partitions(_stored([90_000, 0]), 2, 2) is None
    # Spark Connect: the partitions themselves
    assert rebalance_partitions(one_host, None, 2) == 2
    assert rebalance_partitions(_stored([100_000, 100_000]), None, 2) is None


# --- fits on Spark ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def rows():
    x, *_ = make_mixture(n=N, seed=71, k=3)
    return x


@pytest.fixture(scope="module")
def one_row_group(spark, rows, tmp_path_factory):
    # One row group, read as two partitions of [N, 0] rows: the file is split in two byte
    # ranges and the row group's midpoint is in the first.
    path = str(tmp_path_factory.mktemp("balance") / "one-row-group.parquet")
    pq.write_table(pa.table({"features": pa.array(rows.tolist(), pa.list_(pa.float64()))}),
                   path, row_group_size=None)
    assert pq.ParquetFile(path).num_row_groups == 1
    settings = {"spark.sql.files.maxPartitionBytes": str(os.path.getsize(path) // 2 + 1),
                "spark.sql.files.openCostInBytes": "0", "spark.sql.files.minPartitionNum": "1"}
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        df = spark.read.parquet(path).cache()
        assert df.rdd.glom().map(len).collect() == [N, 0]
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    yield df
    df.unpersist()


@pytest.fixture(scope="module")
def even(spark, rows):
    df = to_dataframe(spark, rows, partitions=2, kind="array<double>").cache()
    assert df.rdd.glom().map(len).collect() == [N // 2, N // 2]
    yield df
    df.unpersist()


def _fit(spark, df, resident_tasks: bool = True, **params):
    with resident_tasks_setting(spark, resident_tasks), recorded_runners() as runners:
        model = GaussianMixture(**PARAMS, **params).fit(df)
    [runner] = runners
    return model, runner


@pytest.fixture(scope="module")
def evenly(spark, even):
    return _fit(spark, even)[0]


def _assert_same_model(a, b) -> None:
    np.testing.assert_allclose(a.summary.logLikelihoodHistory, b.summary.logLikelihoodHistory,
                               rtol=1e-12)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-12)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=1e-12, atol=1e-12)
    assert a.summary.clusterSizes == b.summary.clusterSizes


def test_resident_tasks_share_a_partition_holding_every_row(spark, one_row_group, evenly,
                                                            caplog) -> None:
    with caplog.at_level(logging.INFO, logger="spark_gmm"):
        model, runner = _fit(spark, one_row_group)
    assert runner.counters.resident_jobs == [2]
    assert runner.counters.task_rows == [N // 2, N // 2]
    assert model.runRecord.balance == {"partitionRows": [N, 0],
                                       "storedPartitionRows": [N, 0], "rebalanced": False,
                                       "taskRows": [N // 2, N // 2]}
    assert (f"the input's 2 partitions hold [{N}, 0] rows (the largest 2.00x the mean)"
            in caplog.text)
    assert f"2 resident tasks serve the EM passes (rows per task: [{N // 2}, {N // 2}])" \
        in caplog.text
    assert "rebalancing" not in caplog.text  # one host: the slices balance it
    _assert_same_model(model, evenly)


def test_spark_job_passes_share_it_too(spark, one_row_group, evenly) -> None:
    model, runner = _fit(spark, one_row_group, resident_tasks=False)
    assert runner.counters.resident_passes == 0 and runner.counters.job_passes > 6
    assert runner.counters.task_rows == [N // 2, N // 2]
    _assert_same_model(model, evenly)


def test_the_off_switch_keeps_one_task_per_partition(spark, one_row_group, evenly,
                                                     caplog) -> None:
    with caplog.at_level(logging.INFO, logger="spark_gmm"):
        model, runner = _fit(spark, one_row_group, balanceRows=False)
    assert runner.counters.resident_jobs == [2]
    assert runner.counters.task_rows == [N, 0]
    assert model.runRecord.balance["taskRows"] == [N, 0]
    assert f"(rows per task: [{N}, 0])" in caplog.text
    jobs, by_jobs = _fit(spark, one_row_group, resident_tasks=False, balanceRows=False)
    assert by_jobs.counters.task_rows == [N, 0]
    _assert_same_model(model, evenly)
    _assert_same_model(jobs, evenly)


def test_rows_skewed_across_hosts_are_stored_again_evenly(spark, one_row_group, evenly,
                                                          monkeypatch, caplog) -> None:
    # As if on two hosts, with the threshold lowered to these few rows.
    monkeypatch.setattr(driver, "executor_hosts", lambda sc: 2)
    monkeypatch.setattr(balance, "MIN_REBALANCE_ROWS", 1000)
    with caplog.at_level(logging.INFO, logger="spark_gmm"):
        model, runner = _fit(spark, one_row_group)
    record = model.runRecord.balance
    assert record["rebalanced"] and record["partitionRows"] == [N, 0]
    assert record["storedPartitionRows"] == [N // 2, N // 2]
    assert runner.counters.task_rows == [N // 2, N // 2]
    assert "rebalancing: the rows are stored again in 2 even partitions" in caplog.text
    assert f"rebalanced: 2 partitions of [{N // 2}, {N // 2}] rows" in caplog.text
    _assert_same_model(model, evenly)


def test_lost_slices_alone_are_recomputed(spark, rows, evenly, monkeypatch) -> None:
    # [3000, 1000] on two tasks: the second takes rows 2000-3000 of partition 0 and all of
    # partition 1, whose file is lost before the first pass: only that slice is folded
    # again, from the input, the rest where the tasks ran.
    chunks = spark.sparkContext.parallelize([rows[:3000].tolist(), rows[3000:].tolist()], 2)
    skewed = spark.createDataFrame(chunks.flatMap(lambda chunk: [(r,) for r in chunk]),
                                   "features array<double>")
    assert skewed.rdd.glom().map(len).collect() == [3000, 1000]
    entered = JobPassRunner.__enter__

    def losing_partition_1(self):
        os.unlink(self.store.locations[1].features_path)
        return entered(self)

    monkeypatch.setattr(JobPassRunner, "__enter__", losing_partition_1)
    model, runner = _fit(spark, skewed.cache(), resident_tasks=False)
    assert runner.store.recomputed_partitions == 1
    assert runner.counters.task_rows == [2000, 2000]
    _assert_same_model(model, evenly)
