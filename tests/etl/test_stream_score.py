"""The score job's incremental mode (``input.stream = true``) on real files: each run labels
the files added since the previous one, exactly once, also after a run killed part-way."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from spark_gmm import GaussianMixtureModel
from spark_gmm.cli import EXIT_BAD_INPUT, EXIT_OK, main
from spark_gmm.errors import ConfigError
from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.etl.score_job import run_score
from tests.helpers import job_sections, make_mixture, write_job_config
from tests.job_hooks import entry_command

ROWS_PER_FILE = 40


@pytest.fixture(scope="module")
def fitted(spark, tmp_path_factory) -> tuple[str, GaussianMixtureModel]:
    """A model artifact of the fit job, and the mixture it holds."""
    directory = tmp_path_factory.mktemp("fitted")
    x, *_ = make_mixture(n=600, seed=23)
    data = str(directory / "train.parquet")
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}), data)
    run_fit(spark, build_config(job_sections(directory, data, {"k": 3, "seed": 4})))
    model_path = str(directory / "model")
    return model_path, GaussianMixtureModel.load(os.path.join(model_path, "model"))


def _land(directory, index: int, bad_row: bool = False) -> None:
    """Input file ``index``: rows with ids index * ROWS_PER_FILE onwards."""
    x, *_ = make_mixture(n=ROWS_PER_FILE, seed=100 + index)
    b = x[:, 1].copy()
    if bad_row:
        b[0] = np.nan
    ids = np.arange(ROWS_PER_FILE) + index * ROWS_PER_FILE
    directory.mkdir(exist_ok=True)
    pq.write_table(pa.table({"id": ids, "a": x[:, 0], "b": b, "c": x[:, 2]}),
                   str(directory / f"part-{index:03d}.parquet"))


def _sections(tmp_path, model_path: str, **preprocess) -> dict:
    sections = job_sections(tmp_path, str(tmp_path / "landing"), {"path": model_path},
                            spark={"master": "local[2]"})
    sections["input"].update(stream=True, max_files_per_batch=1)
    sections["output"]["checkpoint_path"] = str(tmp_path / "checkpoint")
    if preprocess:
        sections["preprocess"] = preprocess
    return sections


def _labelled(spark, tmp_path) -> dict[int, tuple[int, int]]:
    """Every labelled row of the output: id -> (prediction, batch); ids must be unique."""
    rows = spark.read.parquet(str(tmp_path / "labelled")).select(
        "id", "prediction", "batch").collect()
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "a row was labelled twice"
    return {row["id"]: (row["prediction"], row["batch"]) for row in rows}


def _expected_predictions(model: GaussianMixtureModel, indices) -> dict[int, int]:
    """scipy's most probable component for the rows of the files ``indices``."""
    expected = {}
    for index in indices:
        x, *_ = make_mixture(n=ROWS_PER_FILE, seed=100 + index)
        log_joint = np.column_stack([
            np.log(w) + multivariate_normal(m, c).logpdf(x)
            for w, m, c in zip(model.weights, model.means, model.covariances)])
        best = (log_joint - logsumexp(log_joint, axis=1, keepdims=True)).argmax(axis=1)
        expected.update({int(i): int(p) for i, p in
                         zip(np.arange(ROWS_PER_FILE) + index * ROWS_PER_FILE, best)})
    return expected


def test_each_run_labels_the_files_added_since_the_last(spark, tmp_path, fitted) -> None:
    model_path, model = fitted
    landing = tmp_path / "landing"
    for index in range(2):
        _land(landing, index, bad_row=index == 1)
    config = build_config(_sections(tmp_path, model_path, invalid_rows="skip"))

    first = run_score(spark, config)
    assert first["batches"] == [0, 1]
    assert (first["rows_read"], first["rows_labelled"], first["rows_skipped"]) == (80, 80, 1)
    assert first["rows_with_null_prediction"] == 1
    assert first["invalid_rows"] == {"total": 1, "by_reason": {"nan": 1}}

    again = run_score(spark, config)
    assert again["batches"] == [] and again["rows_read"] == again["rows_labelled"] == 0

    _land(landing, 2)
    third = run_score(spark, config)
    assert third["batches"] == [2]
    assert (third["rows_read"], third["rows_labelled"]) == (ROWS_PER_FILE, ROWS_PER_FILE)

    labelled = _labelled(spark, tmp_path)
    assert sorted(labelled) == list(range(3 * ROWS_PER_FILE))
    assert {batch for _, batch in labelled.values()} == {0, 1, 2}
    expected = _expected_predictions(model, range(3))
    nan_row = ROWS_PER_FILE  # file 1's first row had a NaN feature: skipped, labelled null
    assert labelled[nan_row][0] is None
    assert {i: p for i, (p, _) in labelled.items() if i != nan_row} == \
        {i: p for i, p in expected.items() if i != nan_row}


def test_a_rerun_with_no_new_file_exits_0(spark, tmp_path, fitted, capsys) -> None:
    model_path, _ = fitted
    _land(tmp_path / "landing", 0)
    config = write_job_config(str(tmp_path / "score.toml"), _sections(tmp_path, model_path))
    assert main(["score", "--config", config]) == EXIT_OK
    assert main(["score", "--config", config]) == EXIT_OK
    assert '"batches": []' in capsys.readouterr().out
    assert len(_labelled(spark, tmp_path)) == ROWS_PER_FILE


@pytest.mark.parametrize("hook", ["--kill-after-publishing-batch",
                                  "--kill-while-writing-batch"])
def test_a_run_killed_midway_loses_and_repeats_no_row(spark, tmp_path, fitted, hook) -> None:
    model_path, model = fitted
    landing = tmp_path / "landing"
    for index in range(3):
        _land(landing, index)
    config = write_job_config(str(tmp_path / "score.toml"), _sections(tmp_path, model_path))
    killed = subprocess.run([*entry_command(hook, "1"), "score", "--config", config],
                            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert os.path.isdir(tmp_path / "labelled" / "batch=0")
    published_before_death = os.path.isdir(tmp_path / "labelled" / "batch=1")
    assert published_before_death == (hook == "--kill-after-publishing-batch")
    if hook == "--kill-while-writing-batch":  # the half-written batch is there, hidden
        assert any(name.startswith(".batch=1._staging-")
                   for name in os.listdir(tmp_path / "labelled"))

    _land(landing, 3)  # and a file arrives before the rerun
    rerun = run_score(spark, build_config(_sections(tmp_path, model_path)))
    assert rerun["batches"] == [1, 2, 3]
    assert rerun["rows_labelled"] == 3 * ROWS_PER_FILE

    labelled = _labelled(spark, tmp_path)
    assert sorted(labelled) == list(range(4 * ROWS_PER_FILE))
    assert {i: p for i, (p, _) in labelled.items()} == _expected_predictions(model, range(4))


def test_the_fit_job_refuses_a_stream(tmp_path, capsys) -> None:
    config = write_job_config(str(tmp_path / "fit.toml"), _sections(tmp_path, "models/m"))
    assert main(["fit", "--config", config]) == EXIT_BAD_INPUT
    assert "input.stream = false for the fit" in capsys.readouterr().err


def test_stream_needs_a_checkpoint_and_files(tmp_path) -> None:
    sections = _sections(tmp_path, "models/m")
    del sections["output"]["checkpoint_path"]
    with pytest.raises(ConfigError, match=r"output\.checkpoint_path"):
        build_config(sections)
    sections = _sections(tmp_path, "models/m")
    sections["input"].update(format="table", table="events")
    with pytest.raises(ConfigError, match=r"input\.format must be 'parquet' or 'csv'"):
        build_config(sections)
