"""Fit and score jobs end to end on real Parquet/CSV files with a local[2] session."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.linalg import cho_factor, cho_solve
from scipy.special import logsumexp

from spark_gmm import GaussianMixtureModel
from spark_gmm.cli import EXIT_BAD_INPUT, main
from spark_gmm.errors import InvalidInputError
from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.etl.io import atomic_publish
from spark_gmm.etl.score_job import run_score
from tests.helpers import make_mixture


def _write_parquet(path, x: np.ndarray, ids=None, bad_rows: dict[int, float] | None = None):
    a, b, c = (x[:, i].copy() for i in range(3))
    for row, value in (bad_rows or {}).items():
        b[row] = value
    table = pa.table({
        "id": ids if ids is not None else np.arange(len(x)),
        "a": a, "b": b, "c": c,
        "region": np.where(np.arange(len(x)) % 2 == 0, "north", "south"),
    })
    pq.write_table(table, str(path))
    return str(path)


def _config(tmp_path, data_path, **sections):
    raw = {
        "input": {"path": data_path, "features": ["a", "b", "c"]},
        "model": {"k": 3, "seed": 3, "max_iter": 30, "tol": 1e-5, "init_mode": "k-means++",
                  "path": str(tmp_path / "model")},
        "output": {"path": str(tmp_path / "labelled")},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return build_config(raw)


@pytest.fixture(scope="module")
def mixture():
    x, labels, means, _ = make_mixture(n=900, seed=41)
    return x, labels, means


def test_fit_then_score(spark, tmp_path, mixture) -> None:
    x, _, means = mixture
    data = _write_parquet(tmp_path / "in.parquet", x)
    config = _config(tmp_path, data, output={"outlier_quantile": 0.05})
    report = run_fit(spark, config)
    assert report["rows_read"] == report["rows_labelled"] == len(x)
    # output is plain Parquet: pyarrow reads it without Spark, no Vector structs
    table = pq.read_table(config.output.path)
    assert set(table.column_names) == {"id", "a", "b", "c", "region", "prediction",
                                       "probability", "log_likelihood", "model_id",
                                       "is_outlier"}
    probability_type = table.schema.field("probability").type
    assert pa.types.is_list(probability_type) and probability_type.value_type == pa.float64()
    assert table.schema.field("prediction").type == pa.int32()
    frame = table.to_pandas().sort_values("id")
    np.testing.assert_array_equal(frame["a"].to_numpy(), x[:, 0])  # pass-through unchanged
    np.testing.assert_allclose(np.stack(frame["probability"]).sum(axis=1), 1.0, rtol=1e-12)
    assert 0.02 < frame["is_outlier"].mean() < 0.08
    fitted_means = np.array(report["original_units"]["means"])
    order = [int(np.argmin(np.linalg.norm(fitted_means - m, axis=1))) for m in means]
    np.testing.assert_allclose(fitted_means[order], means, atol=0.3)
    diagnostics = json.load(open(os.path.join(config.model.path, "diagnostics.json")))
    for key in ("config", "spark_gmm_version", "feature_schema", "log_likelihood_history",
                "seconds_per_iteration", "converged", "cluster_sizes", "bic", "aic",
                "invalid_rows"):
        assert key in diagnostics
    assert len(diagnostics["log_likelihood_history"]) == diagnostics["num_iter"]
    # The run's telemetry is in the diagnostics, not in the saved model.
    passes = diagnostics["em_passes"]
    assert passes["resident_tasks"] + passes["spark_jobs"] > diagnostics["num_iter"]
    assert diagnostics["stored_block_bytes"] == 8 * len(x) * 3  # 3 features, no weight
    assert set(diagnostics["fit_seconds_per_phase"]) == {"storing", "initialisation", "em"}
    assert len(diagnostics["seconds_per_iteration"]) == diagnostics["num_iter"]
    metadata_dir = os.path.join(config.model.path, "model", "metadata")
    metadata = "".join(open(os.path.join(metadata_dir, name)).read()
                       for name in os.listdir(metadata_dir) if name.startswith("part-"))
    assert "clusterSizes" in metadata and "storedBytes" not in metadata
    # scoring the same rows with the saved artifact reproduces the fit's labels
    score_config = build_config({**config.to_dict(), "output": {
        "path": str(tmp_path / "scored")}, "spark": {}})
    run_score(spark, score_config)
    scored = pq.read_table(score_config.output.path).to_pandas().sort_values("id")
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), frame["prediction"])
    np.testing.assert_array_equal(scored["is_outlier"].to_numpy(), frame["is_outlier"])
    assert (scored["model_id"] == report["model_id"]).all()


def test_fit_job_chooses_k_and_the_covariance_type(spark, tmp_path, mixture) -> None:
    x = mixture[0]
    data = _write_parquet(tmp_path / "in.parquet", x)
    config = _config(tmp_path, data, model={"k": {"min": 2, "max": 4},
                                            "covariance_type": ["full", "spherical"],
                                            "criterion": "bic"},
                     preprocess={"standardize": True},
                     report={"enabled": True, "sample_rows": 400})
    report = run_fit(spark, config)
    _check_the_report(spark, config, report, tmp_path)
    selection = json.load(open(os.path.join(config.model.path, "diagnostics.json")))[
        "model_selection"]
    table = selection["table"]
    assert [(r["k"], r["covarianceType"]) for r in table] == [
        (k, t) for t in ("full", "spherical") for k in (2, 3, 4)]
    best = min(table, key=lambda r: r["bic"])
    assert selection["chosen"] == {"k": best["k"], "covarianceType": best["covarianceType"]}
    assert (best["k"], best["covarianceType"]) == (3, "full")  # the generating mixture
    assert report["bic"] == pytest.approx(best["bic"])
    assert all(r["icl"] >= r["bic"] - 1e-9 for r in table)
    saved = GaussianMixtureModel.load(os.path.join(config.model.path, "model"))
    assert saved.getK() == 3 and saved.getCovarianceType() == "full"
    assert report["rows_labelled"] == len(x)


def _check_the_report(spark, config, report, tmp_path) -> None:
    """The fit job's report and ``spark-gmm report``'s, rendered in Chromium."""
    import matplotlib.image

    from tests.browser import loaded_images, screenshot

    page = report["report_path"]
    assert page == os.path.join(config.model.path, "report", "report.html")
    sample = pq.read_table(os.path.join(config.model.path, "sample")).column("features")
    assert 360 <= len(sample) <= 400  # Bernoulli sampling with a margin, then the cut
    assert main(["report", config.model.path, "--output", str(tmp_path / "again")]) == 0
    again = str(tmp_path / "again" / "report.html")
    for path in (page, again):
        html = open(path, encoding="utf-8").read()
        assert "lowest BIC chose K = 3, full" in html and "rows read" in html
        assert "passes over the rows" in html  # the run record, from the diagnostics
    images = loaded_images(again)
    assert len(images) == 5, images  # likelihood, criteria, weights, rows, features
    for image in images:  # decoded by the browser: none broken
        assert image["complete"] and image["width"] > 300 and image["height"] > 150, image
    png = str(tmp_path / "report.png")
    screenshot(again, png)
    pixels = matplotlib.image.imread(png)[..., :3]
    assert (pixels < 0.9).any(axis=2).mean() > 0.03  # not a blank page
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 100


def test_warm_start_continues_the_previous_model(spark, tmp_path) -> None:
    # Two samples of one distribution: yesterday's model starts today's fit, in its units.
    rows, *_ = make_mixture(n=8000, seed=47)
    x, fresh = rows[:4000], rows[4000:]  # two independent draws of the same mixture
    model_settings = {"tol": 1e-6, "max_iter": 200, "init_mode": "random"}
    yesterday = _config(tmp_path / "a", _write_parquet(tmp_path / "a.parquet", x),
                        model=model_settings, preprocess={"standardize": True})
    run_fit(spark, yesterday)
    today_data = _write_parquet(tmp_path / "b.parquet", fresh)
    cold = run_fit(spark, _config(tmp_path / "cold", today_data, model=model_settings,
                                  preprocess={"standardize": True}))
    warm = run_fit(spark, _config(tmp_path / "warm", today_data, preprocess={
        "standardize": True}, model={**model_settings, "warm_start": yesterday.model.path}))
    assert warm["num_iter"] < cold["num_iter"]

    def in_original_units(report):  # log-likelihoods of standardised rows differ by log|J|
        scale = np.array(report["feature_schema"]["standardize_scale"])
        return report["log_likelihood"] - len(fresh) * np.log(scale).sum()

    assert in_original_units(warm) == pytest.approx(in_original_units(cold), rel=1e-4)
    # the warm fit kept yesterday's standardisation, so the two models share units
    assert warm["feature_schema"]["standardize_mean"] == json.load(open(os.path.join(
        yesterday.model.path, "features.json")))["standardize_mean"]
    with pytest.raises(InvalidInputError, match=r"fitted with standardisation but "
                                                r"preprocess\.standardize = false"):
        run_fit(spark, _config(tmp_path / "c", today_data,
                               model={"warm_start": yesterday.model.path}))
    with pytest.raises(InvalidInputError, match=r"has k=3 .* the config has k=4"):
        run_fit(spark, _config(tmp_path / "d", today_data, preprocess={"standardize": True},
                               model={"k": 4, "warm_start": yesterday.model.path}))
    with pytest.raises(InvalidInputError) as missing:
        run_fit(spark, _config(tmp_path / "e", today_data,
                               model={"warm_start": str(tmp_path / "nothing")}))
    assert str(missing.value) == (f"the model artifact '{tmp_path / 'nothing'}' does not exist; "
                                  "check model.warm_start (a directory the fit job wrote)")


def test_invalid_row_policies(spark, tmp_path, mixture) -> None:
    x = mixture[0][:400]
    bad = {3: float("nan"), 10: float("inf"), 11: -float("inf")}
    data = _write_parquet(tmp_path / "bad.parquet", x, bad_rows=bad)
    with pytest.raises(InvalidInputError, match=r"3 of 400 rows .*'b': 3.*nan: 1"):
        run_fit(spark, _config(tmp_path, data))
    skip = run_fit(spark, _config(tmp_path, data, preprocess={"invalid_rows": "skip"}))
    assert skip["rows_labelled"] == 400 and skip["rows_with_null_prediction"] == 3
    assert skip["rows_skipped"] == 3 and sum(skip["cluster_sizes"]) == 397
    quarantine_path = str(tmp_path / "quarantine")
    quarantined = run_fit(spark, _config(tmp_path, data, preprocess={
        "invalid_rows": "quarantine", "quarantine_path": quarantine_path}))
    assert quarantined["rows_labelled"] == 397 and quarantined["rows_quarantined"] == 3
    q = pq.read_table(quarantine_path).to_pandas().sort_values("id")
    assert q["id"].tolist() == [3, 10, 11]
    assert q["invalid_reason"].tolist() == ["nan", "infinite", "infinite"]


def test_csv_with_non_numeric_values(spark, tmp_path) -> None:
    lines = ["id,a,b,c"] + [f"{i},{i % 7}.5,{(i * 3) % 11}.25,{i % 5}" for i in range(60)]
    lines[5] = "4,oops,1.0,2.0"
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n")
    config = _config(tmp_path, str(path), input={"format": "csv"},
                     preprocess={"invalid_rows": "skip"}, model={"k": 2})
    report = run_fit(spark, config)
    assert report["invalid_rows"]["by_reason"] == {"non_numeric": 1}
    assert report["rows_labelled"] == 60


def test_standardisation_stored_and_applied(spark, tmp_path, mixture) -> None:
    x = mixture[0] * [1.0, 1000.0, 0.001] + [0.0, -5e4, 7.0]
    data = _write_parquet(tmp_path / "scaled.parquet", x)
    reg = 1e-6
    config = _config(tmp_path, data, preprocess={"standardize": True},
                     model={"max_iter": 300, "tol": 0.0, "reg_covar": reg})
    report = run_fit(spark, config)
    schema = report["feature_schema"]
    np.testing.assert_allclose(schema["standardize_mean"], x.mean(axis=0), rtol=1e-10)
    scale = x.std(axis=0, ddof=1)
    np.testing.assert_allclose(schema["standardize_scale"], scale, rtol=1e-10)
    # After 300 iterations the model is a fixed point of EM: its parameters are the M-step
    # of its own responsibilities. Recomputed here in original units from the labelled
    # output (numpy, raw features), they must match what the fit reports in original units.
    labelled = pq.read_table(config.output.path).to_pandas().sort_values("id")
    resp = np.stack(labelled["probability"].to_numpy())
    nk = resp.sum(axis=0)
    means = resp.T @ x / nk[:, None]
    covariances = np.stack([(resp[:, k, None] * (x - means[k])).T @ (x - means[k]) / nk[k]
                            + np.diag(reg * scale**2) for k in range(3)])
    units = report["original_units"]
    # Compared per feature in units of its spread (features differ by 10⁶ in scale).
    np.testing.assert_allclose(np.array(units["means"]) / scale, means / scale, rtol=1e-7,
                               atol=1e-7)
    per_scale = np.outer(scale, scale)
    np.testing.assert_allclose(np.array(units["covariances"]) / per_scale,
                               covariances / per_scale, rtol=1e-6, atol=1e-8)
    # The score job scales new rows with the stored mean and scale: its log densities are
    # those of the original-unit model (scipy) plus log|det| of the scaling's Jacobian.
    score = _config(tmp_path, data, output={"path": str(tmp_path / "scored")})
    run_score(spark, score)
    scored = pq.read_table(str(tmp_path / "scored")).to_pandas().sort_values("id")
    components = np.stack([np.log(w) + _log_normal(x, np.array(m), np.array(c)) for w, m, c in
                           zip(report["weights"], units["means"], units["covariances"])], axis=1)
    expected = logsumexp(components, axis=1) + np.log(scale).sum()
    np.testing.assert_allclose(scored["log_likelihood"], expected, rtol=1e-8)
    np.testing.assert_array_equal(scored["prediction"], np.argmax(components, axis=1))


def _log_normal(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    # scipy's multivariate_normal refuses covariances this ill-conditioned (feature scales
    # 1e-3 to 1e3); a Cholesky factor handles them.
    factor = cho_factor(cov, lower=True)
    diff = x - mean
    mahalanobis = np.einsum("nd,nd->n", diff, cho_solve(factor, diff.T).T)
    log_det = 2.0 * np.log(np.diag(factor[0])).sum()
    return -0.5 * (mahalanobis + log_det + len(mean) * np.log(2 * np.pi))


def test_failed_write_keeps_previous_output(spark, tmp_path, mixture) -> None:
    data = _write_parquet(tmp_path / "in.parquet", mixture[0][:300])
    config = _config(tmp_path, data)
    run_fit(spark, config)
    before = pq.read_table(config.output.path).to_pandas().sort_values("id")
    broken = build_config({**config.to_dict(), "output": {
        "path": config.output.path, "partition_by": ["no_such_column"]}})
    with pytest.raises(Exception, match="no_such_column"):
        run_fit(spark, broken)
    after = pq.read_table(config.output.path).to_pandas().sort_values("id")
    assert before.equals(after)
    leftovers = [n for n in os.listdir(tmp_path) if "_staging-" in n or "_previous-" in n]
    assert leftovers == []


def test_task_failure_mid_write_keeps_previous_output(spark, tmp_path) -> None:
    from pyspark import TaskContext
    from pyspark.sql import functions as F

    final = str(tmp_path / "labelled")
    atomic_publish(spark, final, lambda path: spark.range(400).repartition(4)
                   .write.parquet(path))
    before = sorted(pq.read_table(final).column("id").to_pylist())

    @F.udf("long")
    def fail_in_last_partition(value):  # no hints: pyspark would read them as a pandas UDF
        context = TaskContext.get()
        if context.partitionId() == 3:
            raise RuntimeError("injected write failure")
        return value

    def write(path: str) -> None:
        # partitions 0-2 write their files; partition 3 fails mid-job
        spark.range(1000, 1400).repartition(4).select(
            fail_in_last_partition("id").alias("id")).write.parquet(path)

    with pytest.raises(Exception, match="injected write failure"):
        atomic_publish(spark, final, write)
    assert sorted(pq.read_table(final).column("id").to_pylist()) == before
    visible = sorted(os.listdir(tmp_path))
    assert visible == ["labelled"], visible  # no staging or retired copies left around
    assert not [n for n in os.listdir(final) if n.startswith("_temporary")]


def test_rerun_is_idempotent(spark, tmp_path, mixture) -> None:
    data = _write_parquet(tmp_path / "in.parquet", mixture[0][:300])
    config = _config(tmp_path, data, output={"partition_by": ["region"]})
    first = run_fit(spark, config)
    a = pq.read_table(config.output.path).to_pandas().sort_values("id").reset_index(drop=True)
    second = run_fit(spark, config)
    b = pq.read_table(config.output.path).to_pandas().sort_values("id").reset_index(drop=True)
    assert first["model_id"] == second["model_id"]
    assert a.drop(columns="probability").equals(b.drop(columns="probability"))
    np.testing.assert_array_equal(np.stack(a["probability"]), np.stack(b["probability"]))
    partitions = sorted(n for n in os.listdir(config.output.path) if n.startswith("region="))
    assert partitions == ["region=north", "region=south"]


def test_cli_exit_codes(spark, tmp_path, mixture, capsys) -> None:
    data = _write_parquet(tmp_path / "in.parquet", mixture[0][:200])
    conf = tmp_path / "job.toml"
    conf.write_text(f'[input]\npath = "{data}"\nfeatures = ["a", "b", "c"]\n'
                    f'[model]\nk = 2\nmax_iter = 5\ninit_mode = "random"\n'
                    f'path = "{tmp_path / "m"}"\n'
                    f'[output]\npath = "{tmp_path / "o"}"\n')
    assert main(["fit", "--config", str(conf), "--set", "model.k=0"]) == EXIT_BAD_INPUT
    assert "model.k must be at least 1" in capsys.readouterr().err
    assert main(["fit", "--config", str(conf), "--set", 'input.features=["a", "zz"]']) == 2
    assert "'zz' not found" in capsys.readouterr().err
    assert main(["fit", "--config", str(conf)]) == 0
    mismatch = ["score", "--config", str(conf), "--set", 'input.features=["c", "b", "a"]',
                "--set", f"output.path={tmp_path / 's'}"]
    assert main(mismatch) == EXIT_BAD_INPUT
    assert "feature schema mismatch" in capsys.readouterr().err
    capsys.readouterr()
    # An input that is not there, or holds nothing readable: a user error, one line, exit 2.
    (tmp_path / "empty").mkdir()
    absent = "does not exist; check input.path (a file, directory or glob)"
    unreadable = ("holds no parquet files Spark can read a schema from (empty, or another "
                  "format); check input.path and input.format")
    for command, path, says in (("fit", tmp_path / "nothing", absent),
                                ("score", tmp_path / "nothing", absent),
                                ("fit", tmp_path / "empty", unreadable)):
        args = [command, "--config", str(conf), "--set", f"input.path={path}",
                "--set", f"output.path={tmp_path / 'o2'}"]
        assert main(args) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"spark-gmm: error: the input {str(path)!r} {says}"], err


def test_a_map_fit_job_takes_its_prior_in_the_features_units(spark, tmp_path, mixture) -> None:
    x = mixture[0] * [1.0, 1000.0, 0.001] + [0.0, -5e4, 7.0]
    data = _write_parquet(tmp_path / "scaled.parquet", x)
    prior_mean, prior_scale = [1.0, -4e4, 7.5], [2.0, 3e6, 4e-6]
    config = _config(tmp_path, data, preprocess={"standardize": True},
                     model={"max_iter": 8, "prior": "conjugate", "prior_mean": prior_mean,
                            "prior_scale": prior_scale, "reg_covar": 0.0})
    report = run_fit(spark, config)
    assert report["prior"] == "conjugate" and np.isfinite(report["log_posterior"])
    saved = GaussianMixtureModel.load(os.path.join(config.model.path, "model"))
    # The model is fitted on standardised features: (x − m)/s, so μ_P → (μ_P − m)/s and a
    # diagonal Λ → Λ/s².
    m, s = x.mean(axis=0), x.std(axis=0, ddof=1)
    np.testing.assert_allclose(saved.getPriorMean(), (np.array(prior_mean) - m) / s,
                               rtol=1e-9)
    np.testing.assert_allclose(saved.getPriorScale(), np.diag(np.array(prior_scale) / s**2)
                               .ravel(), rtol=1e-9, atol=1e-300)
    assert saved.summary.logPosterior == pytest.approx(report["log_posterior"])
