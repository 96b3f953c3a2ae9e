"""``spark-gmm bench --skewed`` runs end to end on tiny sizes: the rows as one Parquet row
group against them evenly partitioned (its timings are not asserted)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow


def test_bench_skewed_fits_the_rows_as_one_row_group(spark, tmp_path, capsys) -> None:
    from spark_gmm.cli import main

    work_dir = tmp_path / "bench"
    code = main(["bench", "--n", "3000", "--d", "2", "--k", "2", "--iterations", "2",
                 "--rounds", "1", "--skip-mllib", "--skip-sklearn", "--skip-scoring",
                 "--no-warm-up", "--skewed", "--work-dir", str(work_dir)])
    assert code == 0
    skewed = json.load(open(work_dir / "benchmark.json"))["skewed"]
    assert pq.ParquetFile(skewed["path"]).num_row_groups == 1
    assert pq.ParquetFile(skewed["path"]).metadata.num_rows == 3000
    [entry] = skewed["rounds"]
    # the benchmark's two files, and the one row group, which this small file is read as a
    # single partition of
    assert entry["even"]["balance"]["partitionRows"] == [1500, 1500]
    assert entry["skewed"]["balance"]["partitionRows"] == [3000]
    # balanced: both slots take half of it (3,000 rows make two tasks of 1,024 or more);
    # with balanceRows off, one task takes all
    assert entry["skewed"]["balance"]["taskRows"] == [1500, 1500]
    assert entry["skewed_unbalanced"]["balance"]["taskRows"] == [3000]
    for name in ("even", "skewed", "skewed_unbalanced"):
        assert len(entry[name]["iteration_seconds"]) == 2
        assert skewed[f"{name}_seconds_per_iteration"] == entry[name]["seconds_per_iteration"]
    assert skewed["skewed_over_even"] == entry["skewed_over_even"] == pytest.approx(
        entry["skewed"]["seconds_per_iteration"] / entry["even"]["seconds_per_iteration"])
    out = capsys.readouterr().out
    assert ("One row group (one round): the input's partitions held [3000] rows, the tasks "
            "of the passes [1500, 1500] (balanced) and [3000] (balanceRows off); evenly "
            "partitioned [1500, 1500].") in out
    assert "ours per iteration: evenly partitioned " in out
