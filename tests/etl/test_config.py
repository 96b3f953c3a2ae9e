"""Job configuration: strict TOML parsing, overrides, and the shipped config files."""

from __future__ import annotations

import pathlib

import pytest

from spark_gmm.etl.config import ConfigError, build_config, load_config

CONF = pathlib.Path(__file__).resolve().parents[2] / "conf"
BASE = {"input": {"path": "x.parquet", "features": ["a", "b"]}}


def test_shipped_configs_parse() -> None:
    example = load_config(str(CONF / "example.toml"))
    assert example.model.k == 8 and example.input.features == ("amount", "duration", "latency_ms")
    demo = load_config(str(CONF / "demo.toml"))
    from spark_gmm.etl.demo import demo_config

    embedded = demo_config()
    assert demo.model == embedded.model and demo.output == embedded.output
    assert demo.input.features == embedded.input.features
    assert pathlib.Path(CONF.parent / demo.input.path).read_text().startswith("sepal_length")


@pytest.mark.parametrize(("raw", "pattern"), [
    ({**BASE, "model": {"kk": 3}}, r"unknown key model\.kk; valid keys in \[model\]"),
    ({**BASE, "modle": {}}, r"unknown section \[modle\]"),
    ({**BASE, "model": {"k": "three"}}, r"model\.k must be an integer, a list of integers or "
                                         r"\{min = A, max = B\} with A <= B; got 'three'"),
    ({**BASE, "model": {"k": True}}, r"model\.k must be an integer"),
    ({**BASE, "model": {"k": {"min": 5, "max": 2}}}, r"model\.k must be an integer"),
    ({**BASE, "model": {"k": []}}, r"model\.k must be an integer"),
    ({**BASE, "model": {"k": [2, 0]}}, r"model\.k must be at least 1"),
    ({**BASE, "model": {"covariance_type": ["full", "round"]}},
     r"model\.covariance_type must be one of"),
    ({**BASE, "model": {"covariance_type": 3}}, r"model\.covariance_type must be a name or"),
    ({**BASE, "model": {"criterion": "aicc"}}, r"model\.criterion must be one of bic, aic, icl"),
    ({**BASE, "model": {"k": 0}}, r"model\.k must be at least 1"),
    ({**BASE, "model": {"tol": -1}}, r"model\.tol must be >= 0"),
    ({**BASE, "model": {"covariance_type": "round"}}, r"model\.covariance_type must be one of"),
    ({**BASE, "preprocess": {"invalid_rows": "drop"}}, r"preprocess\.invalid_rows must be one"),
    ({**BASE, "preprocess": {"invalid_rows": "quarantine"}}, r"needs preprocess\.quarantine_path"),
    ({**BASE, "output": {"outlier_quantile": 1.5}}, r"output\.outlier_quantile must be in"),
    ({"input": {"path": "x", "features": ["a"], "features_column": "v"}}, "exactly one of"),
    ({"input": {"features": ["a"]}}, r"input\.path is required"),
    ({"input": {"path": "x", "features": "a"}}, r"input\.features must be a list of strings"),
    ({"input": {"path": "x", "features": ["a", "a"]}}, "lists a column twice"),
])
def test_invalid_configs_name_the_key(raw, pattern) -> None:
    with pytest.raises(ConfigError, match=pattern):
        build_config(raw)


def test_overrides() -> None:
    config = build_config(BASE, ["model.k=5", "model.tol=1e-5", "output.path=/data/out",
                                 "preprocess.standardize=true", 'input.features=["c"]'])
    assert config.model.k == 5 and config.model.tol == 1e-5
    assert config.output.path == "/data/out" and config.preprocess.standardize
    assert config.input.features == ("c",)
    with pytest.raises(ConfigError, match=r"model\.k must be an integer"):
        build_config(BASE, ["model.k=abc"])
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        build_config(BASE, ["model.k"])


def test_several_k_and_covariance_types_make_a_selection() -> None:
    one = build_config(BASE)
    assert one.model.k_values == (2,) and one.model.covariance_types == ("full",)
    assert not one.model.selects
    listed = build_config(BASE, ["model.k=[2, 5]", 'model.covariance_type=["diag", "full"]',
                                 "model.criterion=icl"])
    assert listed.model.k_values == (2, 5) and listed.model.covariance_types == ("diag", "full")
    assert listed.model.selects and listed.model.criterion == "icl"
    ranged = build_config({**BASE, "model": {"k": {"min": 2, "max": 6}}})
    assert ranged.model.k_values == (2, 3, 4, 5, 6) and ranged.model.selects
    assert ranged.to_dict()["model"]["k"] == (2, 3, 4, 5, 6)


def test_bad_toml_file(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nk = 2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.toml"))


def test_the_executors_archive_holds_the_package_but_not_the_benchmark(tmp_path) -> None:
    import zipfile

    from spark_gmm.etl.package import build_archive

    names = zipfile.ZipFile(build_archive(str(tmp_path / "spark_gmm.zip"))).namelist()
    for module in ("spark_gmm/__init__.py", "spark_gmm/kernels/packed.py",
                   "spark_gmm/runtime/resident.py", "spark_gmm/ml/scoring.py",
                   "spark_gmm/data/iris.csv"):
        assert module in names
    assert not [n for n in names if n.startswith("spark_gmm/bench") or n.endswith(".pyc")]


def test_the_jobs_command_line_runs_from_the_archive_alone(tmp_path) -> None:
    """spark-submit runs jobs/*.py with only the archive on the path: the command line must
    build without the benchmark it leaves out."""
    import subprocess
    import sys

    from spark_gmm.etl.package import build_archive

    archive = build_archive(str(tmp_path / "spark_gmm.zip"))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import spark_gmm.cli as c; "
            "assert c.__file__.startswith(sys.argv[1]), c.__file__; "
            "sys.exit(c.main(['fit', '--help']))")
    # -S: no site-packages, where an installed spark_gmm (or an editable one's import hook)
    # would supply the modules the archive lacks; the parser needs the standard library only.
    run = subprocess.run([sys.executable, "-I", "-S", "-c", code, archive],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--config" in run.stdout


def test_prior_keys_parse_and_survive_a_round_trip() -> None:
    plain = build_config(BASE)
    assert plain.model.prior == "none" and plain.model.prior_mean is None
    assert build_config(plain.to_dict()) == plain
    raw = {**BASE, "model": {"prior": "conjugate", "prior_mean": [1, 2.5],
                             "prior_degrees_of_freedom": 4, "prior_scale": [2.0]}}
    config = build_config(raw)
    assert (config.model.prior_mean, config.model.prior_scale) == ((1.0, 2.5), (2.0,))
    assert config.model.prior_degrees_of_freedom == 4.0
    assert build_config(config.to_dict()) == config
