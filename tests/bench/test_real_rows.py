"""``spark-gmm bench --missing --noise``: the rows with missing features it writes, and a
tiny run end to end (its timings are not asserted)."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm.bench.real_rows import with_missing_features


def test_thirty_percent_of_the_rows_miss_one_or_two_features(tmp_path) -> None:
    source, target = tmp_path / "rows", tmp_path / "missing"
    source.mkdir()
    rng = np.random.default_rng(3)
    parts = [rng.normal(size=(1000, 4)), rng.normal(size=(500, 4))]
    for index, x in enumerate(parts):
        pq.write_table(pa.table({f"f{j}": x[:, j] for j in range(4)}),
                       source / f"part-{index:05d}.parquet")
    assert with_missing_features(str(source), str(target), seed=0) == 300 + 150
    counts = []
    for index, x in enumerate(parts):
        table = pq.read_table(target / f"part-{index:05d}.parquet")
        y = np.column_stack([table.column(f"f{j}").to_numpy() for j in range(4)])
        missing = np.isnan(y)
        per_row = missing.sum(axis=1)
        assert np.sum(per_row > 0) == round(0.3 * len(x))
        assert per_row.max() == 2  # 1 or 2 of the 4 features, never more
        assert np.array_equal(y[~missing], x[~missing])  # the rest unchanged
        counts.append(per_row[per_row > 0])
    both = np.concatenate(counts)
    assert 0.35 < np.mean(both == 1) < 0.65  # one or two, about equally often
    # the same seed draws the same rows again
    with_missing_features(str(source), str(tmp_path / "again"), seed=0)
    again = pq.read_table(tmp_path / "again" / "part-00000.parquet").column("f0").to_numpy()
    first = pq.read_table(target / "part-00000.parquet").column("f0").to_numpy()
    assert np.array_equal(np.isnan(again), np.isnan(first))


def test_two_features_lose_at_most_one(tmp_path) -> None:
    source = tmp_path / "rows"
    source.mkdir()
    x = np.random.default_rng(1).normal(size=(200, 2))
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1]}), source / "part-00000.parquet")
    with_missing_features(str(source), str(tmp_path / "missing"), seed=4)
    table = pq.read_table(tmp_path / "missing" / "part-00000.parquet")
    per_row = np.isnan(np.column_stack([c.to_numpy() for c in table.columns])).sum(axis=1)
    assert np.sum(per_row == 1) == 60 and per_row.max() == 1


@pytest.mark.slow
def test_bench_missing_and_noise_record_every_round_and_their_ratios(spark, tmp_path,
                                                                     capsys) -> None:
    from spark_gmm.cli import main

    work_dir = tmp_path / "bench"
    code = main(["bench", "--n", "3000", "--d", "3", "--k", "2", "--iterations", "3",
                 "--rounds", "2", "--skip-mllib", "--skip-sklearn", "--skip-scoring",
                 "--no-warm-up", "--missing", "--noise", "--work-dir", str(work_dir)])
    assert code == 0
    real = json.load(open(work_dir / "benchmark.json"))["real_rows"]
    assert real["incomplete_rows"] == 900  # 30 % of each file's 1,500 rows
    assert len(real["rounds"]) == 2
    for entry in real["rounds"]:
        for name in ("plain", "missing", "noise"):
            assert entry[name]["iterations_run"] == len(entry[name]["iteration_seconds"]) == 3
            assert entry[name]["seconds_per_iteration"] == statistics.median(
                entry[name]["iteration_seconds"])
        for name in ("missing", "noise"):
            assert entry[f"{name}_over_plain"] == pytest.approx(
                entry[name]["seconds_per_iteration"] / entry["plain"]["seconds_per_iteration"])
        assert 0 < entry["noise"]["noise_weight"] < 1
    for name in ("missing", "noise"):
        each = [e[f"{name}_over_plain"] for e in real["rounds"]]
        assert real[f"{name}_over_plain_rounds"] == each
        assert real[f"{name}_over_plain"] == statistics.median(each)
    flat = " ".join(capsys.readouterr().out.split())
    assert (f"an iteration with missing features (marginalized) takes "
            f"{real['missing_over_plain']:.2f}× the time of a complete-data iteration "
            "(target ≤ 2.00×") in flat
    assert (f"an iteration with the noise component takes {real['noise_over_plain']:.2f}× the "
            "time of a plain iteration (target ≤ 1.10×") in flat


def test_options_this_build_cannot_run_fail_before_any_work(monkeypatch, capsys,
                                                            tmp_path) -> None:
    from spark_gmm.bench import real_rows
    from spark_gmm.cli import EXIT_BAD_INPUT, main

    class WithoutThem:  # an estimator from before #27
        def hasParam(self, name: str) -> bool:
            return name not in ("missingFeatures", "noise")

    monkeypatch.setattr(real_rows, "GaussianMixture", WithoutThem)
    work_dir = tmp_path / "bench"
    assert main(["bench", "--missing", "--noise", "--work-dir", str(work_dir)]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert ("--missing needs GaussianMixture's missingFeatures param, which this version of "
            "spark-gmm does not have; --noise needs GaussianMixture's noise param") in error
    assert main(["bench", "--bayesian", "--remote", "sc://localhost:1",
                 "--work-dir", str(work_dir)]) == EXIT_BAD_INPUT
    assert "--bayesian runs in a classic session only" in capsys.readouterr().err
    assert not work_dir.exists()  # nothing generated, no session started
