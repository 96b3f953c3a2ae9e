"""The estimator, the model, Pipelines and the jobs on a Spark Connect session, against the
same fits in a classic session (run in a separate process, tests/connect/classic_reference)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.errors import InvalidInputError
from tests.connect.cases import cases, data, estimator, frame

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def classic(tmp_path_factory) -> dict[str, np.ndarray]:
    output = str(tmp_path_factory.mktemp("classic") / "reference.npz")
    # The child must not inherit this process's Connect mode.
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "SPARK_REMOTE",
                        "SPARK_CONNECT_AUTHENTICATE_TOKEN")}
    result = subprocess.run([sys.executable, "-m", "tests.connect.classic_reference", output],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    with np.load(output) as reference:
        return dict(reference)


@pytest.fixture(scope="module")
def df(connect):
    from spark_gmm.runtime.connect import is_connect

    frame_ = frame(connect).cache()
    assert is_connect(frame_)
    return frame_


@pytest.mark.parametrize("name", list(cases()))
def test_fits_equal_the_classic_session_s(df, classic, name) -> None:
    model = estimator(cases()[name]).fit(df)
    summary = model.summary
    run = model.runRecord
    assert run.residentPasses == 0 and run.jobPasses > summary.numIter  # Connect passes
    for field in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(model, field), classic[f"{name}/{field}"],
                                   rtol=1e-8, atol=1e-12, err_msg=field)
    assert summary.numIter == int(classic[f"{name}/numIter"])
    np.testing.assert_allclose(summary.logLikelihood, classic[f"{name}/logLikelihood"],
                               rtol=1e-10)
    predictions = model.transform(df).orderBy("id").select("prediction").toPandas()
    np.testing.assert_array_equal(predictions["prediction"].to_numpy(),
                                  classic[f"{name}/prediction"])


def test_an_interrupted_fit_resumes_from_its_checkpoint_on_connect(df, tmp_path, caplog,
                                                                   monkeypatch) -> None:
    import spark_gmm.fit.driver as driver

    path = str(tmp_path / "em.json")
    params = {"k": 3, "seed": 8, "tol": 0.0, "initMode": "k-means||", "maxIter": 8}
    written = driver.write_checkpoint

    def write_then_die(*args, **kwargs):  # the driver dies right after iteration 3's write
        written(*args, **kwargs)
        if max(len(run.history) for run in args[3]) == 3:
            raise KeyboardInterrupt("killed after iteration 3")

    monkeypatch.setattr(driver, "write_checkpoint", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        GaussianMixture(checkpointPath=path, **params).fit(df)
    monkeypatch.setattr(driver, "write_checkpoint", written)
    assert max(len(r["history"]) for r in json.load(open(path))["runs"]) == 3
    with caplog.at_level(logging.INFO, logger="spark_gmm"):
        resumed = GaussianMixture(checkpointPath=path, **params).fit(df)
    assert "resuming from checkpoint" in caplog.text
    assert not os.path.exists(path)  # removed once the fit completed
    whole = GaussianMixture(**params).fit(df)
    assert resumed.summary.numIter == whole.summary.numIter == 8
    np.testing.assert_array_equal(resumed.means, whole.means)
    np.testing.assert_array_equal(resumed.covariances, whole.covariances)


def test_save_load_and_a_pipeline_with_overwrite(connect, df, tmp_path) -> None:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.feature import StandardScaler

    pipeline = Pipeline(stages=[
        StandardScaler(inputCol="features", outputCol="scaled"),
        GaussianMixture(k=3, featuresCol="scaled", seed=1, maxIter=10)])
    fitted = pipeline.fit(df)
    path = str(tmp_path / "pipeline")
    for _ in range(2):  # the second save overwrites the first
        fitted.write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    assert isinstance(loaded.stages[-1], GaussianMixtureModel)
    np.testing.assert_array_equal(loaded.stages[-1].means, fitted.stages[-1].means)
    a = fitted.transform(df).orderBy("id").select("prediction").toPandas()
    b = loaded.transform(df).orderBy("id").select("prediction").toPandas()
    np.testing.assert_array_equal(a["prediction"], b["prediction"])

    model_path, estimator_path = str(tmp_path / "model"), str(tmp_path / "estimator")
    model = fitted.stages[-1]
    for _ in range(2):
        model.write().overwrite().save(model_path)
        pipeline.getStages()[-1].write().overwrite().save(estimator_path)
    np.testing.assert_array_equal(GaussianMixtureModel.load(model_path).covariances,
                                  model.covariances)
    assert GaussianMixture.load(estimator_path).getK() == 3
    with open(os.path.join(model_path, "extra.pkl"), "wb") as stray:
        stray.write(b"\x80\x04N.")  # a pickle of None: never to be loaded
    with pytest.raises(Exception, match="never has"):
        GaussianMixtureModel.load(model_path)


def test_bad_input_is_refused_on_the_client_before_any_em_work(connect) -> None:
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import StructField, StructType

    rows = [(Vectors.dense([1.0, 2.0]),), (Vectors.dense([float("nan"), 0.0]),),
            (Vectors.dense([3.0, 1.0]),), (None,)] * 5
    schema = StructType([StructField("features", VectorUDT(), True)])
    bad = connect.createDataFrame(rows, schema).repartition(2)
    with pytest.raises(InvalidInputError, match=r"'features' is null in 5 of 20 rows"):
        GaussianMixture(k=2).fit(bad)
    with pytest.raises(InvalidInputError, match="weight column 'nope' not found"):
        GaussianMixture(k=2, weightCol="nope").fit(bad)


def test_the_fit_and_score_jobs_run_through_connect(connect, tmp_path) -> None:
    from spark_gmm.cli import main
    from spark_gmm.etl.io import read_json

    x, _ = data()
    source = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"id": np.arange(len(x)), "a": x[:, 0], "b": x[:, 1],
                             "c": x[:, 2]}), source)
    config = tmp_path / "job.toml"
    config.write_text(f"""
[input]
path = "{source}"
features = ["a", "b", "c"]
[model]
k = [2, 3]
seed = 3
path = "{tmp_path / 'artifact'}"
[preprocess]
standardize = true
[output]
path = "{tmp_path / 'labelled'}"
[drift]
enabled = true
[spark]
remote = "local[2]"
""")
    for _ in range(2):  # the rerun replaces the outputs
        assert main(["fit", "--config", str(config)]) == 0
    labelled = pq.read_table(str(tmp_path / "labelled")).to_pandas()
    assert len(labelled) == len(x) and labelled["prediction"].notna().all()
    diagnostics = read_json(connect, str(tmp_path / "artifact" / "diagnostics.json"))
    assert diagnostics["model_selection"]["chosen"]["k"] == 3
    assert diagnostics["rows_labelled"] == len(x)
    score = tmp_path / "score.toml"
    score.write_text(config.read_text().replace(str(tmp_path / "labelled"),
                                                str(tmp_path / "scored")))
    assert main(["score", "--config", str(score)]) == 0  # the training rows: no drift
    scored = pq.read_table(str(tmp_path / "scored")).to_pandas().sort_values("id")
    np.testing.assert_array_equal(scored["prediction"].to_numpy(),
                                  labelled.sort_values("id")["prediction"].to_numpy())



@pytest.mark.parametrize("upstream", [None, "overwrites"])
def test_lost_block_files_are_folded_from_the_input_unless_it_changed(
        connect, tmp_path, monkeypatch, caplog, upstream) -> None:
    from spark_gmm.errors import InputChangedError
    from spark_gmm.runtime import connect as connect_runtime

    x, _ = data()
    source = tmp_path / "input"
    source.mkdir()
    for part, rows in enumerate((x[:600], x[600:])):
        pq.write_table(pa.table({"a": rows[:, 0], "b": rows[:, 1], "c": rows[:, 2]}),
                       str(source / f"part-{part}.parquet"))
    from pyspark.sql import functions as F

    # One partition per file (small files are otherwise packed into one partition).
    connect.conf.set("spark.sql.files.maxPartitionBytes", "1m")
    df = connect.read.parquet(str(source)).select(F.array("a", "b", "c").alias("features"))
    params = {"k": 3, "seed": 4, "maxIter": 6, "tol": 0.0, "initMode": "random"}
    undisturbed = GaussianMixture(**params).fit(df)
    original = connect_runtime.ConnectPassRunner.run
    passes: list[int] = []

    def losing_files_after_the_second_pass(self, request):
        result = original(self, request)
        passes.append(1)
        if len(passes) == 2:
            for handle in self.store.stored_partitions():
                os.unlink(handle.features_path)
            if upstream:
                rows = x[:600] + np.array([0.0, 4.0, 0.0])
                pq.write_table(pa.table({"a": rows[:, 0], "b": rows[:, 1], "c": rows[:, 2]}),
                               str(source / "part-0.parquet"))
        return result

    monkeypatch.setattr(connect_runtime.ConnectPassRunner, "run",
                        losing_files_after_the_second_pass)
    try:
        if upstream:
            with pytest.raises(InputChangedError, match="the same 600 rows with other values"):
                GaussianMixture(**params).fit(df)
            return
        with caplog.at_level(logging.WARNING, logger="spark_gmm"):
            disturbed = GaussianMixture(**params).fit(df)
    finally:
        connect.conf.unset("spark.sql.files.maxPartitionBytes")
    assert "folding those partitions from the input" in caplog.text
    np.testing.assert_allclose(disturbed.summary.logLikelihoodHistory,
                               undisturbed.summary.logLikelihoodHistory, rtol=1e-12)
    np.testing.assert_allclose(disturbed.means, undisturbed.means, rtol=1e-10, atol=1e-12)


def test_answers_merged_on_the_server_give_the_same_model(df, monkeypatch) -> None:
    from spark_gmm.runtime import connect as connect_runtime

    many = df.repartition(8, "id").cache()  # above 4 partitions a pass may merge on the server
    params = {"k": 3, "seed": 9, "maxIter": 5, "tol": 0.0, "initMode": "k-means||"}
    on_the_client = GaussianMixture(**params).fit(many)
    monkeypatch.setattr(connect_runtime, "SERVER_MERGE_BYTES", 0)  # every pass merges there
    merged = []
    repartition = type(many).repartition

    def counted(self, *args, **kwargs):
        merged.append(args)
        return repartition(self, *args, **kwargs)

    monkeypatch.setattr(type(many), "repartition", counted)
    on_the_server = GaussianMixture(**params).fit(many)
    # every statistics pass (5 iterations, the final one) merged in √8 = 2 groups; the
    # k-means‖ passes, whose answers are small, may not
    assert len(merged) >= on_the_server.summary.numIter + 1 and set(merged) == {(2,)}
    np.testing.assert_allclose(on_the_server.summary.logLikelihoodHistory,
                               on_the_client.summary.logLikelihoodHistory, rtol=1e-12)
    np.testing.assert_allclose(on_the_server.means, on_the_client.means, rtol=1e-10)


def test_rows_in_one_partition_are_stored_again_evenly(df, monkeypatch, caplog) -> None:
    # A Connect pass is one task per stored partition: the partitions themselves are
    # balanced (the 100,000-row floor lowered to these rows).
    from pyspark.sql import functions as F

    from spark_gmm.runtime import balance

    params = {"k": 3, "seed": 9, "maxIter": 5, "tol": 0.0, "initMode": "random"}
    evenly = GaussianMixture(**params).fit(df)
    assert not evenly.runRecord.balance["rebalanced"]
    skewed = df.repartition(2, F.lit(0)).cache()  # every row in one of two partitions
    monkeypatch.setattr(balance, "MIN_REBALANCE_ROWS", 1000)
    with caplog.at_level(logging.INFO, logger="spark_gmm"):
        model = GaussianMixture(**params).fit(skewed)
    record = model.runRecord.balance
    assert sorted(record["partitionRows"]) == [0, 1200] and record["rebalanced"]
    assert record["storedPartitionRows"] == record["taskRows"] == [600, 600]
    assert "rebalancing: the rows are stored again in 2 even partitions" in caplog.text
    np.testing.assert_allclose(model.summary.logLikelihoodHistory,
                               evenly.summary.logLikelihoodHistory, rtol=1e-12)
    np.testing.assert_allclose(model.means, evenly.means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.covariances, evenly.covariances, rtol=1e-12, atol=1e-12)
