"""Spark's failures that mean bad input, one per row of docs/jobs.md's table: each is an
InvalidInputError (exit code 2) with one line naming the location, its key and the fix.

These run the jobs as a library, where nothing is checked before Spark reads; the command
line's checks before Spark starts are in tests/test_cli.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm.errors import InvalidInputError, ModelFormatError
from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.etl.score_job import run_score
from tests.helpers import without_permission_override


def _raw(tmp_path, path: str, **sections) -> dict:
    raw = {"input": {"path": path, "features": ["a", "b"]},
           "model": {"k": 2, "seed": 1, "max_iter": 5, "path": str(tmp_path / "model")},
           "output": {"path": str(tmp_path / "labelled")}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def _config(tmp_path, path: str, **sections):
    return build_config(_raw(tmp_path, path, **sections))


def _rows(n: int = 40) -> pa.Table:
    rng = np.random.default_rng(5)
    return pa.table({"a": rng.normal(size=n), "b": rng.normal(size=n),
                     "species": np.where(np.arange(n) % 2 == 0, "setosa", "virginica")})


def _fit_error(spark, config) -> str:
    with pytest.raises(InvalidInputError) as caught:
        run_fit(spark, config)
    message = str(caught.value)
    assert "\n" not in message and "Exception" not in message and "Error" not in message
    return message


def test_input_not_there_or_not_readable(spark, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"garbage" * 100)
    gz = tmp_path / "rows.csv.gz"
    gz.write_bytes(b"not compressed at all" * 10)
    for path, sections, says in (
            (tmp_path / "nothing", {},
             "the input '{p}' does not exist; check input.path (a file, directory or glob)"),
            (tmp_path / "empty", {},
             "the input '{p}' holds no parquet files Spark can read a schema from (empty, or "
             "another format); check input.path and input.format"),
            (garbage, {},
             "the input '{p}' has a file that is not a parquet file (file:{p}); remove it, or "
             "check input.format"),
            (gz, {"input": {"format": "csv"}},
             "the input '{p}' has a file Spark cannot read (file://{p}: not a gzip file); "
             "replace or remove it")):
        config = _config(tmp_path, str(path), **sections)
        assert _fit_error(spark, config) == says.format(p=path)
    table = _config(tmp_path, "", input={"format": "table", "table": "no_such_table"})
    assert _fit_error(spark, table) == ("the input 'no_such_table' is not a table or view of "
                                        "this session's catalog; check input.table")


def test_a_file_spark_cannot_read_at_the_first_pass(spark, tmp_path) -> None:
    # The schema comes from one file; the others are read by the first pass over the rows.
    broken = tmp_path / "broken"
    broken.mkdir()
    pq.write_table(_rows(), str(broken / "part-0.parquet"))
    (broken / "part-1.parquet").write_bytes(b"PAR1" + b"x" * 100 + b"PAR1")
    said = _fit_error(spark, _config(tmp_path, str(broken)))
    assert said.startswith(f"the input '{broken}' has a file Spark cannot read "
                           f"(file://{broken}/part-1.parquet: corrupted file: "), said
    assert said.endswith("); replace or remove it"), said
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pq.write_table(_rows(), str(mixed / "part-0.parquet"))
    pq.write_table(_rows().set_column(1, "b", pa.array(["x"] * 40)),
                   str(mixed / "part-1.parquet"))
    assert _fit_error(spark, _config(tmp_path, str(mixed))) == (
        f"the input '{mixed}' has files that disagree on a column's type: "
        f"file://{mixed}/part-1.parquet stores column b as BINARY, not double; rewrite that "
        "file or leave it out of input.path")


def test_a_string_column_among_the_features_is_a_config_error_before_any_row_work(
        spark, tmp_path, monkeypatch) -> None:
    import spark_gmm.etl.rows

    def no_row_work(*args, **kwargs):
        raise AssertionError("the rows were counted")

    monkeypatch.setattr(spark_gmm.etl.rows, "count_rows", no_row_work)
    data = tmp_path / "iris.parquet"
    pq.write_table(_rows(), str(data))
    for policy in ("error", "skip"):
        config = _config(tmp_path, str(data), input={"features": ["a", "species"]},
                         preprocess={"invalid_rows": policy})
        assert _fit_error(spark, config) == (
            "column 'species' is a string column: remove it from input.features or encode it "
            "first (features are numeric)")


def test_a_csv_column_of_text_is_a_config_error(spark, tmp_path) -> None:
    # CSV columns holding some stray text are string columns too: those keep their numeric
    # rows (tests/etl/test_jobs.py); a column with no number at all is a label, not a feature.
    data = tmp_path / "iris.csv"
    _rows().to_pandas().to_csv(data, index=False)
    config = _config(tmp_path, str(data), input={"format": "csv", "features": ["a", "species"]},
                     preprocess={"invalid_rows": "skip"})
    assert _fit_error(spark, config) == (
        "column 'species' is a string column (no number in any of its 40 rows): remove it "
        "from input.features or encode it first (features are numeric)")


def test_a_policy_that_leaves_no_rows_says_how_many_were_skipped_and_why(spark,
                                                                        tmp_path) -> None:
    data = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0, 4.0, 5.0],
                             "b": [float("nan"), None, float("inf"), float("nan"), None]}),
                   str(data))
    skip = _config(tmp_path, str(data), preprocess={"invalid_rows": "skip"})
    by = "by column 'b': 5; by reason infinite: 1, nan: 2, null: 2"
    assert _fit_error(spark, skip) == (
        f"preprocess.invalid_rows = 'skip' leaves no rows: all 5 rows have invalid features "
        f"({by}); fix the data or input.features")
    # Under 'error' the advice is no longer to skip them.
    assert _fit_error(spark, _config(tmp_path, str(data))) == (
        f"all 5 rows have invalid features ({by}); fix the data or input.features (skipping "
        "them would leave no rows)")


def test_model_artifact_not_there_or_not_one(spark, tmp_path) -> None:
    data = tmp_path / "in.parquet"
    pq.write_table(_rows(), str(data))
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad_json" / "model").mkdir(parents=True)
    (tmp_path / "bad_json" / "features.json").write_text("{not json")
    fix = "; check model.path (a directory the fit job wrote)"
    for model, says in (("nope", "does not exist"),
                        ("empty", "is not one: it has no features.json"),
                        ("bad_json", "is not one: its features.json cannot be used (it is not "
                                     "valid JSON (Expecting property name enclosed in double "
                                     "quotes, line 1))")):
        config = _config(tmp_path, str(data), model={"path": str(tmp_path / model)})
        with pytest.raises(InvalidInputError) as caught:
            run_score(spark, config)
        assert str(caught.value) == f"the model artifact '{tmp_path / model}' {says}{fix}"
    schema_only = tmp_path / "schema_only"
    schema_only.mkdir()
    (schema_only / "features.json").write_text(json.dumps({
        "columns": ["a", "b"], "vector_column": "", "n_features": 2, "standardize_mean": [],
        "standardize_scale": [], "model_id": "gmm-x"}))
    with pytest.raises(ModelFormatError) as caught:
        run_score(spark, _config(tmp_path, str(data), model={"path": str(schema_only)}))
    assert str(caught.value) == (
        f"cannot read model metadata under '{schema_only}/model' (it does not exist); is this "
        "a directory written by GaussianMixtureModel.save?")


_PERMISSIONS = textwrap.dedent("""
    import json, sys
    from pyspark.sql import SparkSession
    from spark_gmm.errors import InvalidInputError
    from spark_gmm.etl.config import build_config
    from spark_gmm.etl.fit_job import run_fit
    from spark_gmm.etl.score_job import run_score

    spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("OFF")
    said = []
    for job, raw in json.loads(sys.argv[1]):
        try:
            (run_fit if job == "fit" else run_score)(spark, build_config(raw))
            said.append("no error")
        except InvalidInputError as error:
            said.append(str(error))
    print(json.dumps(said))
""")


def test_permission_denied_through_spark(tmp_path) -> None:
    # The jobs run in a child process that chmod binds (as root: without CAP_DAC_OVERRIDE).
    prefix = without_permission_override()
    good = tmp_path / "good.parquet"
    pq.write_table(_rows(), str(good))
    closed_file = tmp_path / "closed.parquet"
    pq.write_table(_rows(), str(closed_file))
    closed_dir = tmp_path / "closed_dir"
    closed_dir.mkdir()
    pq.write_table(_rows(), str(closed_dir / "part-0.parquet"))
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    model = tmp_path / "model"
    model.mkdir()
    (model / "features.json").write_text("{}")

    def raw(path, **sections):
        return _raw(tmp_path, str(path), **sections)

    fitted = {"path": str(tmp_path / "fitted")}
    jobs = [("fit", raw(closed_file, model=fitted)), ("fit", raw(closed_dir, model=fitted)),
            ("fit", raw(good, model=fitted, output={"path": str(read_only / "labelled")})),
            ("score", raw(good, model={"path": str(model)}))]
    for path in (closed_file, closed_dir, model / "features.json"):
        path.chmod(0)
    read_only.chmod(0o555)
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", _PERMISSIONS, json.dumps(jobs)],
                              capture_output=True, text=True, timeout=300)
    finally:
        closed_dir.chmod(0o755)
        read_only.chmod(0o755)
    assert done.returncode == 0, done.stderr[-3000:]
    unreadable = "is not readable (permission denied); check input.path, or let this user read it"
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        f"the input '{closed_file}' {unreadable}",
        f"the input '{closed_dir}' {unreadable}",
        f"cannot write output.path '{read_only}/labelled': permission denied; choose another "
        "output.path or let this user write its directory",
        f"the model artifact '{model}' is not readable (permission denied); check model.path "
        "(a directory the fit job wrote)"]


def test_the_command_line_prints_spark_traces_only_with_verbose(tmp_path) -> None:
    # A file Spark fails on inside a task: Spark's own logs of the task would print its Java
    # trace; the command line's quiet log4j configuration leaves them to --verbose.
    broken = tmp_path / "broken"
    broken.mkdir()
    pq.write_table(_rows(), str(broken / "part-0.parquet"))
    (broken / "part-1.parquet").write_bytes(b"PAR1" + b"x" * 100 + b"PAR1")
    conf = tmp_path / "job.toml"
    conf.write_text(f'[input]\npath = "{broken}"\nfeatures = ["a", "b"]\n[model]\nk = 2\n'
                    f'path = "{tmp_path / "model"}"\n[output]\npath = "{tmp_path / "out"}"\n')
    said = {}
    for verbose in ([], ["--verbose"]):
        done = subprocess.run([sys.executable, "-m", "spark_gmm.cli", "fit", "--config",
                               str(conf), *verbose], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 2, done.stderr[-3000:]
        said[bool(verbose)] = done.stderr.strip().splitlines()
    quiet, verbose_lines = said[False], said[True]
    assert quiet[-1].startswith(f"spark-gmm: error: the input '{broken}' has a file Spark "
                                "cannot read"), quiet
    # Spark's own lines may still arrive after it with --verbose (a cancelled task's log).
    assert quiet[-1] in verbose_lines
    trace = ("Traceback (most recent call last):", "Caused by:")
    assert not [line for line in quiet if line.startswith(trace) or line.startswith("\tat ")]
    assert [line for line in verbose_lines if line.startswith("Traceback")]
    assert [line for line in verbose_lines if line.startswith("\tat ")]
    # A path that does not exist, found by Spark (a Hadoop configuration directory makes a
    # path without a scheme Hadoop's to resolve): Spark's warning and its trace stay out too.
    (tmp_path / "hadoop-conf").mkdir()
    conf.write_text(conf.read_text().replace(str(broken), str(tmp_path / "nothing")))
    done = subprocess.run([sys.executable, "-m", "spark_gmm.cli", "fit", "--config", str(conf)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HADOOP_CONF_DIR": str(tmp_path / "hadoop-conf")})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and " INFO spark_gmm.etl.session: starting" in lines[0], lines
    assert lines[-1] == (f"spark-gmm: error: the input '{tmp_path / 'nothing'}' does not exist; "
                         "check input.path (a file, directory or glob)")
    assert [line for line in lines if " spark_gmm." not in line] == lines[-1:], lines
