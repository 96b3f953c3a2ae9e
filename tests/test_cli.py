"""The command line's help: every subcommand says what it does, shows an example, names its
config and its exit codes; every option has help text; no reST markup reaches a terminal."""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys

import pytest

from spark_gmm.cli import build_parser
from tests.helpers import without_permission_override

PARSER = build_parser()
SUBCOMMANDS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))


def test_every_command_of_the_readme_has_a_subcommand() -> None:
    assert set(SUBCOMMANDS.choices) == {"demo", "fit", "score", "drift", "report", "bench",
                                        "params", "package"}


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS.choices))
def test_help_describes_shows_an_example_config_and_exit_codes(name: str) -> None:
    parser = SUBCOMMANDS.choices[name]
    text = parser.format_help()
    assert parser.description and len(parser.description) > 30, name
    example = re.search(r"^example:\n  (spark-gmm \S+.*)$", text, re.MULTILINE)
    assert example and example.group(1).split()[1] == name, text
    assert re.search(r"^config: \S", text, re.MULTILINE), text
    codes = re.search(r"^exit codes: (.*?)(?:\n\n|\Z)", text, re.MULTILINE | re.DOTALL)
    assert codes and "0 success" in codes.group(1), text
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    assert not re.search(r"``|:class:|:func:|:mod:|::$", text, re.MULTILINE), text
    for line in text.splitlines():
        assert len(line) <= 100, line


def test_the_examples_parse() -> None:
    for name in SUBCOMMANDS.choices:
        example = SUBCOMMANDS.choices[name].epilog.split("\n")[1].split()[1:]
        args = PARSER.parse_args([a.strip("'") for a in example])
        assert args.command == name


def test_top_level_help_has_no_markup_and_names_the_exit_codes() -> None:
    text = PARSER.format_help()
    assert "exit codes: 0 success" in " ".join(text.split())
    assert "``" not in text


# A location that is not there or not readable is a user error found before Spark starts:
# exit 2, one line naming the location, its key and the fix, and no session requested.
_JOB = '''[input]
path = "{data}"
features = ["a", "b"]
[model]
k = 2
path = "{model}"
[output]
path = "{output}"
'''


class _SessionRequestedError(Exception):
    pass


@pytest.fixture
def sessions(monkeypatch) -> list[tuple]:
    """The Spark sessions the command asks for: recorded, never started."""
    import spark_gmm.etl.session

    calls: list[tuple] = []

    def build_session(*args, **kwargs):
        calls.append(args)
        raise _SessionRequestedError("the command asked for a Spark session")

    monkeypatch.setattr(spark_gmm.etl.session, "build_session", build_session)
    return calls


def _job(tmp_path, data="in.parquet", model="model", output="out") -> str:
    (tmp_path / "in.parquet").write_bytes(b"rows")  # existence is what is checked here
    (tmp_path / "empty").mkdir()
    conf = tmp_path / "job.toml"
    conf.write_text(_JOB.format(data=tmp_path / data if "://" not in data else data,
                                model=tmp_path / model if "://" not in model else model,
                                output=tmp_path / output))
    return str(conf)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("command, overrides, says", [
    ("fit", {"data": "nothing.parquet"},
     "the input '{tmp}/nothing.parquet' does not exist; check input.path (a file, directory "
     "or glob)"),
    ("fit", {"data": "part-*.parquet"},
     "the input '{tmp}/part-*.parquet' does not exist; check input.path (a file, directory "
     "or glob)"),
    ("score", {"model": "nope"},
     "the model artifact '{tmp}/nope' does not exist; check model.path (a directory the fit "
     "job wrote)"),
    ("score", {"model": "empty"},
     "the model artifact '{tmp}/empty' is not one: it has no features.json; check model.path (a "
     "directory the fit job wrote)"),
    ("score", {"model": "mock:///models/nope"},  # pyarrow's filesystem layer, in memory
     "the model artifact 'mock:///models/nope' does not exist; check model.path (a directory "
     "the fit job wrote)"),
    ("fit", {"output": "job.toml/labelled"},
     "cannot write output.path '{tmp}/job.toml/labelled': '{tmp}/job.toml' is a file, not a "
     "directory; choose another output.path"),
])
def test_a_location_that_is_not_there_exits_2_before_spark_starts(
        tmp_path, capsys, sessions, command, overrides, says) -> None:
    from spark_gmm.cli import EXIT_BAD_INPUT, main

    conf = _job(tmp_path, **overrides)
    assert main([command, "--config", conf]) == EXIT_BAD_INPUT
    assert _one_line(capsys) == "spark-gmm: error: " + says.format(tmp=tmp_path)
    assert sessions == []


def test_the_other_commands_check_their_locations_before_spark_starts(
        tmp_path, capsys, sessions) -> None:
    from spark_gmm.cli import EXIT_BAD_INPUT, main

    nothing = tmp_path / "nothing"
    (tmp_path / "file").write_text("")
    for args, says in (
            (["drift", "--model", str(nothing), "--input", str(tmp_path / "file")],
             f"the model artifact '{nothing}' does not exist; check --model (a directory the "
             "fit job wrote)"),
            (["drift", "--model", str(tmp_path), "--input", str(nothing)],
             f"the input '{nothing}' does not exist; check --input (a file, directory or "
             "glob)"),
            (["demo", "--output", str(tmp_path / "file" / "demo")],
             f"cannot write --output '{tmp_path}/file/demo/labelled': '{tmp_path}/file' is a "
             "file, not a directory; choose another --output"),
            (["bench", "--input", str(nothing)],
             f"the input '{nothing}' does not exist; check --input (a file, directory or "
             "glob)"),
            (["package", "--output", str(tmp_path / "file" / "a.zip")],
             f"cannot write --output '{tmp_path}/file/a.zip': '{tmp_path}/file' is a file, "
             "not a directory; choose another --output")):
        assert main(args) == EXIT_BAD_INPUT
        assert _one_line(capsys) == "spark-gmm: error: " + says
    pytest.importorskip("matplotlib")
    assert main(["report", str(nothing), "--output", str(tmp_path / "r")]) == EXIT_BAD_INPUT
    assert _one_line(capsys) == (f"spark-gmm: error: the model artifact '{nothing}' does not "
                                 "exist; check the ARTIFACT argument (a directory the fit job "
                                 "wrote)")
    assert sessions == []


def test_a_remote_store_pyarrow_cannot_reach_is_left_to_spark(tmp_path, capsys,
                                                              sessions) -> None:
    from spark_gmm.cli import EXIT_FAILURE, main

    # s3a is Hadoop's scheme, unknown to pyarrow: nothing is said before Spark starts.
    conf = _job(tmp_path, model="s3a://bucket/models/m")
    assert main(["score", "--config", conf]) == EXIT_FAILURE
    assert len(sessions) == 1
    assert "spark-gmm: error" not in capsys.readouterr().err


# The command line in a child process whose Spark session request exits 99.
_NO_SESSION = ("import sys, spark_gmm.etl.session as s\n"
               "def refuse(*a, **k): sys.exit(99)\n"
               "s.build_session = refuse\n"
               "from spark_gmm.cli import main\n"
               "sys.exit(main(sys.argv[1:]))\n")


def _run(prefix: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-c", _NO_SESSION, *args],
                          capture_output=True, text=True, timeout=120,
                          cwd=pathlib.Path(__file__).parents[1])


def test_unreadable_input_and_model_and_unwritable_output_exit_2(tmp_path) -> None:
    prefix = without_permission_override()
    conf = _job(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    (tmp_path / "in.parquet").chmod(0)
    model = tmp_path / "model"
    (model / "model" / "metadata").mkdir(parents=True)
    (model / "features.json").write_text("{}")
    (model / "features.json").chmod(0)
    locked.chmod(0o555)
    try:
        if not prefix and os.access(locked, os.W_OK):
            pytest.skip("chmod does not bind this user")
        cases = (
            (["fit"], f"the input '{tmp_path}/in.parquet' is not readable (permission denied); "
                      "check input.path, or let this user read it"),
            (["score", "--set", f"input.path={conf}"],
             f"the model artifact '{model}' is not readable (permission denied); check "
             "model.path (a directory the fit job wrote)"),
            (["fit", "--config", str(tmp_path)],
             f"config file '{tmp_path}' cannot be read (is a directory); check --config"),
            (["fit", "--config", str(model / "features.json")],
             f"config file '{model}/features.json' cannot be read (permission denied); check "
             "--config"),
            (["fit", "--set", f"input.path={conf}", "--set", f"output.path={locked}/out"],
             f"cannot write output.path '{locked}/out': the directory '{locked}' is not "
             "writable (permission denied); choose another output.path or let this user "
             "write its directory"))
        for args, says in cases:
            config = [] if "--config" in args else ["--config", conf]
            done = _run(prefix, args[0], *config, *args[1:])
            assert (done.returncode, done.stderr.strip().splitlines()) == (
                2, ["spark-gmm: error: " + says]), done.stderr
    finally:
        locked.chmod(0o755)


def test_the_trace_only_with_verbose(tmp_path) -> None:
    conf = _job(tmp_path, model="nope")
    says = (f"spark-gmm: error: the model artifact '{tmp_path}/nope' does not exist; check "
            "model.path (a directory the fit job wrote)")
    quiet = _run([], "score", "--config", conf)
    assert (quiet.returncode, quiet.stderr.strip().splitlines()) == (2, [says])
    verbose = _run([], "score", "--config", conf, "--verbose")
    lines = verbose.stderr.strip().splitlines()
    assert verbose.returncode == 2 and lines[-1] == says
    assert "Traceback (most recent call last):" in lines and "check_artifact" in verbose.stderr


def test_paths_without_a_scheme_are_checked_only_where_they_are_local_files(
        monkeypatch) -> None:
    from spark_gmm.etl.locations import local_path, plain_paths_are_local

    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert plain_paths_are_local({}, None, None)
    assert plain_paths_are_local({}, "local[2]", None)
    assert plain_paths_are_local({}, None, "local[2]")  # a local Connect server
    assert not plain_paths_are_local({}, "yarn", None)
    assert not plain_paths_are_local({}, None, "sc://host:15002")
    assert not plain_paths_are_local({"spark.hadoop.fs.defaultFS": "hdfs://nn:8020"}, None, None)
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "4040")  # under spark-submit: its master
    assert not plain_paths_are_local({}, None, None)
    assert plain_paths_are_local({}, "local[1]", None)
    monkeypatch.setenv("HADOOP_CONF_DIR", "/etc/hadoop")
    assert not plain_paths_are_local({}, "local[1]", None)
    assert local_path("file:///data/x", False) == "/data/x"
    assert local_path("file:/data/x", False) == "/data/x"
    assert local_path("/data/x", True) == "/data/x"
    assert local_path("/data/x", False) is None
    assert local_path("s3://bucket/x", True) is None
