"""The executor-local block store: round trip, lost or damaged files, clean-up."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from spark_gmm import GaussianMixture
from spark_gmm.runtime.block_store import (
    BLOCK_ROWS,
    Block,
    BlockStore,
    StoredPartition,
    read_stored_partition,
    write_partition,
)
from spark_gmm.runtime.ingest import feature_moments, store_blocks
from spark_gmm.runtime.passes import JobPassRunner
from spark_gmm.runtime.requests import StatisticsRequest
from tests.helpers import make_mixture, to_dataframe


def _sums(blocks: Iterator[Block]) -> tuple[int, np.ndarray, float] | None:
    # rows, Σ w·x and Σ w, folded over a partition; None for a partition without rows
    total = None
    for x, w in blocks:
        weights = np.ones(x.shape[0]) if w is None else w
        value = (x.shape[0], weights @ x, float(weights.sum()))
        total = value if total is None else _add(total, value)
    return total


def _add(a: tuple[int, np.ndarray, float], b: tuple[int, np.ndarray, float]
         ) -> tuple[int, np.ndarray, float]:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _store(spark, x: np.ndarray, w: np.ndarray | None) -> BlockStore:
    # 4 partitions, the last one empty
    rows = [(r.tolist(), None if w is None else float(v))
            for r, v in zip(x, np.zeros(len(x)) if w is None else w)]
    thirds = np.array_split(np.arange(len(rows)), 3)
    parts = [[rows[i] for i in third] for third in thirds] + [[]]
    rdd = spark.sparkContext.parallelize(parts, 4).flatMap(lambda part: part)
    df = spark.createDataFrame(rdd, "features array<double>, w double")
    assert df.rdd.getNumPartitions() == 4
    return store_blocks(df, F.col("features"), None if w is None else "w")


def _by_first_column(x: np.ndarray) -> np.ndarray:
    return x[np.argsort(x[:, 0])]


def _paths(store: BlockStore) -> list[str]:
    handles: list[StoredPartition] = store.stored_partitions()
    return [p for s in handles for p in (s.features_path, s.weights_path) if os.path.exists(p)]


@pytest.mark.parametrize("weighted", [False, True])
def test_stored_partitions_fold_to_the_sums_of_the_input(spark, weighted) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 4))
    w = rng.uniform(0, 2, size=x.shape[0]) if weighted else None
    store = _store(spark, x, w)
    try:
        rows, weighted_sum, weight_sum = store.aggregate(_sums, _add, 2)
        expected_weights = np.ones(x.shape[0]) if w is None else w
        assert rows == x.shape[0]
        np.testing.assert_allclose(weighted_sum, expected_weights @ x, rtol=1e-12)
        assert weight_sum == pytest.approx(expected_weights.sum(), rel=1e-12)
        assert store.recomputed_partitions == 0
        assert len(_paths(store)) == (6 if weighted else 3)  # three non-empty partitions
        # the files hold the rows bit for bit, mapped read-only (no task can change them)
        stored = [read_stored_partition(h) for h in store.stored_partitions()]
        assert all(blocks is not None for blocks in stored)
        blocks = [b for partition in stored for b in partition]
        assert not any(x.flags.writeable for x, _ in blocks)
        assert max(b.shape[0] for b, _ in blocks) <= BLOCK_ROWS
        assert sum(h.n_rows for h in store.stored_partitions()) == x.shape[0]
        stored_rows = np.concatenate([b for b, _ in blocks])
        if weighted:  # the weight travels with its row
            stored_rows = np.column_stack([stored_rows, np.concatenate([v for _, v in blocks])])
            x = np.column_stack([x, w])
        np.testing.assert_array_equal(_by_first_column(stored_rows), _by_first_column(x))
    finally:
        store.close()


@pytest.mark.parametrize("weighted", [False, True])
def test_writing_pass_takes_the_weighted_feature_moments(spark, weighted) -> None:
    # Far from the origin, so that a raw Σx² − (Σx)² formula would lose digits; 4 partitions,
    # one empty; 12,000 rows per partition arrive as two Arrow batches (blocks) each.
    rng = np.random.default_rng(8)
    x = rng.normal(size=(36_000, 3)) * [1.0, 1e-3, 50.0] + [1e6, -3.0, 0.0]
    w = rng.uniform(0, 2, size=x.shape[0]) if weighted else None
    store = _store(spark, x, w)
    try:
        moments = feature_moments(store.stored_partitions())
        mean, variance = moments.mean, moments.variance
    finally:
        store.close()
    np.testing.assert_allclose(mean, np.average(x, axis=0, weights=w), rtol=1e-13)
    expected = np.average((x - np.average(x, axis=0, weights=w)) ** 2, axis=0, weights=w)
    np.testing.assert_allclose(variance, expected, rtol=1e-9)


def test_missing_or_truncated_files_are_recomputed_and_written_again(spark, caplog) -> None:
    x = np.random.default_rng(4).normal(size=(4000, 3))
    store = _store(spark, x, None)
    try:
        first = store.aggregate(_sums, _add, 2)
        paths = sorted(_paths(store))
        os.unlink(paths[0])
        with open(paths[1], "r+b") as stream:
            stream.truncate(os.path.getsize(paths[1]) - 8)
        with caplog.at_level(logging.WARNING, logger="spark_gmm.runtime.block_store"):
            second = store.aggregate(_sums, _add, 2)
        assert store.recomputed_partitions == 2
        assert "2 of 4 partitions" in caplog.text
        assert second[0] == first[0] == 4000
        np.testing.assert_allclose(second[1], x.sum(axis=0), rtol=1e-12)
        # the recomputation wrote the files again, so the next pass reads them all
        third = store.aggregate(_sums, _add, 2)
        assert store.recomputed_partitions == 2 and third[0] == 4000
    finally:
        store.close()


def test_close_removes_the_files_and_their_directory(spark) -> None:
    x = np.random.default_rng(5).normal(size=(3000, 2))
    store = _store(spark, x, np.ones(3000))
    store.aggregate(_sums, _add, 2)
    paths = _paths(store)
    directories = {os.path.dirname(p) for p in paths}
    assert len(paths) == 6
    store.close()
    assert not any(os.path.exists(p) for p in paths)
    assert not any(os.path.exists(d) for d in directories)
    assert not store.handles.is_cached


def test_fit_whose_stored_files_vanish_mid_fit_gives_the_same_model(spark, monkeypatch,
                                                                   one_job_per_pass) -> None:
    x, *_ = make_mixture(n=6000, seed=41, k=3)
    df = to_dataframe(spark, x, partitions=3)
    estimator = GaussianMixture(k=3, seed=2, maxIter=6, tol=0.0, initMode="random")
    undisturbed = estimator.fit(df)

    original = JobPassRunner.run
    passes: list[int] = []
    recomputed: list[int] = []

    def losing_files_after_the_second_pass(self, request):
        result = original(self, request)
        if not isinstance(request, StatisticsRequest):
            return result
        passes.append(1)
        if len(passes) == 2:
            for path in _paths(self.store):
                os.unlink(path)
        recomputed.append(self.store.recomputed_partitions)
        return result

    monkeypatch.setattr(JobPassRunner, "run", losing_files_after_the_second_pass)
    disturbed = estimator.fit(df)
    # the pass after the loss recomputed all three partitions from the input and wrote
    # their files again; the passes after it read those
    assert len(passes) >= 5 and recomputed == [0, 0] + [3] * (len(passes) - 2)
    np.testing.assert_allclose(disturbed.summary.logLikelihoodHistory,
                               undisturbed.summary.logLikelihoodHistory, rtol=1e-12)
    np.testing.assert_allclose(disturbed.means, undisturbed.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(disturbed.covariances, undisturbed.covariances,
                               rtol=1e-10, atol=1e-12)


def test_unwritable_local_directory_is_named_in_the_error(tmp_path, monkeypatch) -> None:
    not_a_directory = tmp_path / "local"
    not_a_directory.write_text("a file where the executor's local directory should be")
    monkeypatch.setenv("SPARK_LOCAL_DIRS", str(not_a_directory))
    block = (np.ones((3, 2)), None)
    with pytest.raises(OSError, match=r"partition 7 under .*local/spark-gmm-blocks-.*"
                                      r"free space there or point spark.local.dir"):
        write_partition("store", 7, iter([block]))


def _store_directories(spark) -> set[str]:
    roots = spark.sparkContext.parallelize([0], 1).map(
        lambda _: os.environ.get("SPARK_LOCAL_DIRS", "")).collect()[0].split(",")
    return {os.path.join(r, d) for r in roots if r for d in os.listdir(r)
            if d.startswith("spark-gmm-blocks-")}


def test_closing_a_store_that_was_never_written_writes_nothing(spark) -> None:
    before = _store_directories(spark)
    store = _store(spark, np.random.default_rng(6).normal(size=(500, 2)), None)
    context = spark.sparkContext
    context.setJobGroup("close-unwritten", "closing a store that was never written")
    try:
        store.close()  # e.g. the fit failed before its first pass completed
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    assert context.statusTracker().getJobIdsForGroup("close-unwritten") == []
    assert not store.handles.is_cached
    assert _store_directories(spark) == before
    # whereas a written store does create its directory (so the check above can fail)
    written = _store(spark, np.random.default_rng(6).normal(size=(500, 2)), None)
    written.stored_partitions()
    assert len(_store_directories(spark) - before) == 1
    written.close()
    assert _store_directories(spark) == before


@pytest.mark.parametrize("change", ["other values", "fewer rows"])
def test_input_overwritten_under_a_fit_fails_it_naming_the_partition(
        spark, tmp_path, monkeypatch, one_job_per_pass, change) -> None:
    # One job per pass: resident tasks keep their files mapped (a deleted file stays
    # readable to them), and the hook below runs a Spark job between passes. The input is
    # not cached (a job's input is: Spark's cache then keeps the rows the fit started with).
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spark_gmm.errors import InputChangedError

    x, *_ = make_mixture(n=4000, seed=43, k=3)
    source = tmp_path / "input"
    source.mkdir()

    def write(name: str, rows: np.ndarray) -> None:
        pq.write_table(pa.table({"a": rows[:, 0], "b": rows[:, 1], "c": rows[:, 2]}),
                       str(source / name))

    write("part-0.parquet", x[:2000])
    write("part-1.parquet", x[2000:])
    replacement = x[:2000] + np.array([5.0, 0.0, 0.0]) if change == "other values" else x[:1500]
    original = JobPassRunner.run
    passes: list[int] = []

    def upstream_overwrites_after_the_second_pass(self, request):
        result = original(self, request)
        if not isinstance(request, StatisticsRequest):
            return result
        passes.append(1)
        if len(passes) == 2:  # a lost block file, and the input changed meanwhile
            for path in _paths(self.store):
                os.unlink(path)
            write("part-0.parquet", replacement)
        return result

    monkeypatch.setattr(JobPassRunner, "run", upstream_overwrites_after_the_second_pass)
    # One partition per file (small files are otherwise packed into one partition).
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1m")
    try:
        df = spark.read.parquet(str(source)).select(F.array("a", "b", "c").alias("features"))
        expected = ("2000 rows at the first pass, 1500 now" if change == "fewer rows"
                    else "the same 2000 rows with other values")
        with pytest.raises(InputChangedError, match=r"partition \d of the input changed "
                           r"during the fit: .*" + expected):
            GaussianMixture(k=3, seed=2, maxIter=8, tol=0.0, initMode="random").fit(df)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")


def test_a_changed_input_is_exit_code_1_in_the_jobs(monkeypatch, capsys, tmp_path) -> None:
    from spark_gmm.cli import EXIT_FAILURE, main
    from spark_gmm.errors import InputChangedError
    from spark_gmm.etl import fit_job
    from tests.helpers import job_sections, write_job_config

    def changed(spark, config):
        raise InputChangedError("partition 0 of the input changed during the fit")

    monkeypatch.setattr(fit_job, "run_fit", changed)
    monkeypatch.setattr("spark_gmm.cli._session", lambda *args, **kwargs: None)
    data = tmp_path / "in.parquet"  # there, so the checks before Spark starts pass
    pq.write_table(pa.table({"a": [1.0], "b": [2.0], "c": [3.0]}), str(data))
    config = write_job_config(str(tmp_path / "job.toml"),
                              job_sections(tmp_path, str(data), {"k": 2}))
    assert main(["fit", "--config", config]) == EXIT_FAILURE
    assert "InputChangedError: partition 0 of the input changed" in capsys.readouterr().err
