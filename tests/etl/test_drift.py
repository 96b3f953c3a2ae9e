"""Drift checks: a fresh sample of the training distribution passes (exit 0), the same rows
with one feature shifted by 3 standard deviations do not (exit 3), bad input exits 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm.cli import EXIT_BAD_INPUT, EXIT_DRIFT, EXIT_OK, main
from spark_gmm.etl.config import DriftConfig, build_config
from spark_gmm.etl.drift import drift_checks, population_stability
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.etl.score_job import run_score
from tests.helpers import make_mixture


def test_population_stability_is_the_textbook_sum() -> None:
    shares, expected = [0.5, 0.3, 0.2], [0.4, 0.4, 0.2]
    by_hand = 0.1 * math.log(0.5 / 0.4) - 0.1 * math.log(0.3 / 0.4)
    assert population_stability(shares, expected) == pytest.approx(by_hand, rel=1e-12)
    assert population_stability(expected, expected) == 0.0
    # an empty component counts (floored at 1e-6) instead of dividing by zero
    assert population_stability([0.0, 1.0], [0.5, 0.5]) > 5


def test_each_check_trips_its_own_threshold() -> None:
    training = {"mean": -4.0, "std": 1.5, "low_quantile": 0.01, "low": -9.0}
    limits = DriftConfig()
    calm = drift_checks(1000, -4.1, 12, [500, 300, 200], [0.5, 0.3, 0.2], training, limits)
    assert not calm["drifted"]
    assert calm["log_likelihood"]["drop_in_training_std"] == pytest.approx(0.1 / 1.5)
    worse = drift_checks(1000, -6.0, 12, [500, 300, 200], [0.5, 0.3, 0.2], training, limits)
    assert worse["log_likelihood"]["exceeded"] and worse["drifted"]
    moved = drift_checks(1000, -4.0, 12, [100, 300, 600], [0.5, 0.3, 0.2], training, limits)
    assert moved["component_shares"]["exceeded"] and not moved["log_likelihood"]["exceeded"]
    tails = drift_checks(1000, -4.0, 80, [500, 300, 200], [0.5, 0.3, 0.2], training, limits)
    assert tails["low_log_likelihood"]["exceeded"] and tails["low_log_likelihood"]["share"] == 0.08


def _parquet(path, x: np.ndarray) -> str:
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}), str(path))
    return str(path)


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drift")
    rows, *_ = make_mixture(n=12_000, seed=53)
    train, fresh = rows[:6000], rows[6000:]  # two independent draws of one mixture
    config = build_config({
        "input": {"path": _parquet(tmp / "train.parquet", train), "features": ["a", "b", "c"]},
        "model": {"k": 3, "seed": 1, "tol": 1e-6, "path": str(tmp / "model")},
        "output": {"path": str(tmp / "labelled")},
        "preprocess": {"standardize": True}})
    report = run_fit(spark, config)
    shifted = fresh.copy()
    shifted[:, 1] += 3 * train[:, 1].std()
    return tmp, config, report, fresh, shifted


def test_the_artifact_records_the_training_log_likelihood(trained) -> None:
    tmp, _, report, *_ = trained
    training = json.load(open(tmp / "model" / "features.json"))["training_log_likelihood"]
    assert training == report["training_log_likelihood"]
    assert training["mean"] == pytest.approx(report["log_likelihood"] / 6000, rel=1e-9)
    assert training["std"] > 0 and training["low"] < training["mean"]


def test_fresh_rows_pass_and_shifted_rows_exit_3(trained, capsys) -> None:
    tmp, _, _, fresh, shifted = trained
    model = str(tmp / "model")
    assert main(["drift", "--model", model, "--input",
                 _parquet(tmp / "fresh.parquet", fresh)]) == EXIT_OK
    calm = json.loads(capsys.readouterr().out)
    assert not calm["drifted"] and calm["rows"] == 6000
    assert calm["log_likelihood"]["drop_in_training_std"] < 0.2
    assert calm["component_shares"]["psi"] < 0.01
    assert calm["low_log_likelihood"]["share"] < 0.03
    assert main(["drift", "--model", model, "--input",
                 _parquet(tmp / "shifted.parquet", shifted)]) == EXIT_DRIFT
    moved = json.loads(capsys.readouterr().out)
    assert moved["drifted"] and moved["log_likelihood"]["exceeded"]
    assert moved["low_log_likelihood"]["share"] > 0.3
    # thresholds come from the [drift] section, also on the command line
    assert main(["drift", "--model", model, "--input", str(tmp / "shifted.parquet"), "--set",
                 "drift.max_log_likelihood_drop=1e9", "--set", "drift.max_psi=1e9", "--set",
                 "drift.max_low_share=1.0"]) == EXIT_OK
    capsys.readouterr()


def test_bad_drift_input_exits_2(trained, capsys) -> None:
    tmp, *_ = trained
    pq.write_table(pa.table({"a": [1.0], "c": [2.0]}), str(tmp / "no_b.parquet"))
    assert main(["drift", "--model", str(tmp / "model"), "--input",
                 str(tmp / "no_b.parquet")]) == EXIT_BAD_INPUT
    assert "'b' not found" in capsys.readouterr().err
    assert main(["drift", "--model", str(tmp / "nothing"), "--input",
                 str(tmp / "no_b.parquet")]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines() == [
        f"spark-gmm: error: the model artifact '{tmp / 'nothing'}' does not exist; check "
        "--model (a directory the fit job wrote)"]
    assert main(["drift", "--input", str(tmp / "no_b.parquet")]) == EXIT_BAD_INPUT
    assert "needs --model and --input" in capsys.readouterr().err


def test_the_score_job_checks_drift_when_asked(spark, trained) -> None:
    tmp, config, *_ = trained
    score = build_config({**config.to_dict(), "input": {
        **config.to_dict()["input"], "path": str(tmp / "shifted.parquet")},
        "output": {"path": str(tmp / "scored")}, "drift": {"enabled": True}, "spark": {}})
    report = run_score(spark, score)
    assert report["rows_labelled"] == 6000 and report["drift"]["drifted"]
