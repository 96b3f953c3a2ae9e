"""Scoring, persistence and Pipeline round trips of the fitted model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import VectorAssembler
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.errors import ModelFormatError
from spark_gmm.kernels import COVARIANCE_TYPES
from tests.helpers import make_mixture, to_dataframe


@pytest.fixture(scope="module")
def data(spark):
    x, *_ = make_mixture(n=600, seed=31)
    return x, to_dataframe(spark, x, partitions=3).cache()


@pytest.fixture(scope="module")
def fitted(data) -> GaussianMixtureModel:
    return GaussianMixture(k=3, seed=3, maxIter=20, tol=1e-6).fit(data[1])


def test_transform_matches_scipy(data, fitted) -> None:
    x, df = data
    out = fitted.setLogLikelihoodCol("loglik").transform(df)
    assert out.columns == ["features", "probability", "prediction", "loglik"]  # MLlib's order
    assert dict(out.dtypes)["prediction"] == "int"
    rows = out.collect()
    assert len(rows) == len(x)
    features = np.array([r.features.toArray() for r in rows])
    probability = np.array([r.probability.toArray() for r in rows])
    log_parts = np.column_stack([
        np.log(fitted.weights[j]) + multivariate_normal(fitted.means[j], fitted.covariances[j])
        .logpdf(features) for j in range(3)
    ])
    reference_ll = logsumexp(log_parts, axis=1)
    np.testing.assert_allclose([r.loglik for r in rows], reference_ll, rtol=1e-10)
    np.testing.assert_allclose(probability, np.exp(log_parts - reference_ll[:, None]),
                               atol=1e-12)
    np.testing.assert_array_equal([r.prediction for r in rows], log_parts.argmax(axis=1))
    np.testing.assert_allclose(probability.sum(axis=1), 1.0, rtol=1e-12)
    # single-row API agrees with the batch path
    assert fitted.predict(features[0]) == rows[0].prediction
    np.testing.assert_allclose(fitted.predictProbability(rows[0].features).toArray(),
                               probability[0], rtol=1e-12)
    fitted.clear(fitted.logLikelihoodCol)


def test_transform_keeps_rows_with_bad_features_as_null(spark, fitted) -> None:
    rows = [([0.0, 1.0, 2.0], 1), ([float("nan"), 1.0, 2.0], 2), (None, 3),
            ([1.0, 2.0], 4), ([1.0, float("inf"), 0.0], 5)]
    df = spark.createDataFrame(rows, "features array<double>, id int")
    out = {r.id: r for r in fitted.transform(df).collect()}
    assert len(out) == 5
    assert out[1].prediction is not None and out[1].probability is not None
    for bad in (2, 3, 4, 5):
        assert out[bad].prediction is None and out[bad].probability is None


def test_summary_and_information_criteria(data, fitted) -> None:
    x, _ = data
    summary = fitted.summary
    assert sum(summary.clusterSizes) == len(x)
    p = 3 * 3 * 4 // 2 + 3 * 3 + 2  # full covariances + means + free weights
    assert summary.numParameters == p
    np.testing.assert_allclose(summary.bic, -2 * summary.logLikelihood + p * np.log(len(x)))
    np.testing.assert_allclose(summary.aic, -2 * summary.logLikelihood + 2 * p)
    assert summary.numIter == len(summary.logLikelihoodHistory)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_save_load_round_trip(spark, data, tmp_path, covariance_type: str) -> None:
    model = GaussianMixture(k=2, covarianceType=covariance_type, seed=1, maxIter=5,
                            initMode="random", predictionCol="cluster").fit(data[1])
    path = str(tmp_path / "model")
    model.save(path)
    loaded = GaussianMixtureModel.load(path)
    assert loaded.uid == model.uid and loaded.getPredictionCol() == "cluster"
    assert loaded.getCovarianceType() == covariance_type
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert loaded.summary.logLikelihood == model.summary.logLikelihood
    a = [r.cluster for r in model.transform(data[1]).collect()]
    b = [r.cluster for r in loaded.transform(data[1]).collect()]
    assert a == b
    assert not any(name.endswith((".pkl", ".pickle")) for _, _, files in os.walk(path)
                   for name in files)
    with pytest.raises(Exception, match="already exists"):
        model.save(path)
    model.write().overwrite().save(path)


def test_pipeline_round_trip(spark, tmp_path) -> None:
    x, *_ = make_mixture(n=400, seed=2)
    df = spark.createDataFrame([tuple(map(float, r)) for r in x], ["a", "b", "c"])
    pipeline = Pipeline(stages=[
        VectorAssembler(inputCols=["a", "b", "c"], outputCol="features"),
        GaussianMixture(k=3, seed=4, maxIter=10, initMode="random"),
    ])
    fitted = pipeline.fit(df)
    fitted.write().save(str(tmp_path / "pipeline_model"))
    pipeline.write().save(str(tmp_path / "pipeline"))
    loaded = PipelineModel.load(str(tmp_path / "pipeline_model"))
    assert isinstance(loaded.stages[1], GaussianMixtureModel)
    before = [r.prediction for r in fitted.transform(df).collect()]
    after = [r.prediction for r in loaded.transform(df).collect()]
    assert before == after
    reloaded_estimator = Pipeline.load(str(tmp_path / "pipeline")).getStages()[1]
    assert isinstance(reloaded_estimator, GaussianMixture) and reloaded_estimator.getK() == 3


def test_from_arrays_and_params_api(spark) -> None:
    model = GaussianMixtureModel.fromArrays([0.25, 0.75], [[0.0], [10.0]], [1.0, 4.0],
                                            covarianceType="spherical")
    assert model.predict([9.0]) == 1 and model.predict([-1.0]) == 0
    gmm = GaussianMixture(k=4, regCovar=1e-3)
    assert gmm.getK() == 4 and gmm.getRegCovar() == 1e-3 and gmm.getTol() == 1e-3
    assert gmm.getMaxIter() == 100 and gmm.getCovarianceType() == "full"
    assert gmm.copy({gmm.k: 7}).getK() == 7 and gmm.getK() == 4
    assert "covarianceType" in gmm.explainParams()
    with pytest.raises(TypeError):
        GaussianMixture(3)  # type: ignore[misc]
    gaussians = model.gaussiansDF.collect()
    assert len(gaussians) == 2 and gaussians[1].cov.toArray()[0, 0] == 4.0


def _break(path: str, what: str) -> None:
    data_dir = os.path.join(path, "data")
    if what == "truncated":
        for name in os.listdir(data_dir):
            if name.endswith(".parquet"):
                with open(os.path.join(data_dir, name), "r+b") as handle:
                    handle.truncate(100)
    elif what == "missing-data":
        import shutil
        shutil.rmtree(data_dir)
    elif what == "pickle":
        import pickle

        with open(os.path.join(data_dir, "weights.pkl"), "wb") as handle:
            pickle.dump({"weights": [1.0]}, handle)
    elif what == "wrong-shape":
        import shutil

        from pyspark.sql import SparkSession

        from spark_gmm.ml.persistence import _DATA_SCHEMA
        shutil.rmtree(data_dir)
        rows = [(j, 1 / 3, [0.0, 1.0], [1.0, 0.0, 0.0, 1.0]) for j in range(3)]
        SparkSession.active().createDataFrame(rows, _DATA_SCHEMA).write.parquet(data_dir)
    elif what == "wrong-class":
        meta = os.path.join(path, "metadata")
        for name in os.listdir(meta):
            if name.startswith("part-"):
                file = os.path.join(meta, name)
                text = open(file).read().replace("spark_gmm.ml.model.GaussianMixtureModel",
                                                 "os.system")
                assert "os.system" in text
                open(file, "w").write(text)
                for crc in os.listdir(meta):
                    if crc.endswith(".crc"):
                        os.remove(os.path.join(meta, crc))


@pytest.mark.parametrize("what", ["truncated", "missing-data", "wrong-class", "pickle",
                                  "wrong-shape"])
def test_corrupted_model_directory_is_refused(data, fitted, tmp_path, what: str) -> None:
    path = str(tmp_path / "model")
    fitted.save(path)
    _break(path, what)
    with pytest.raises(ModelFormatError):
        GaussianMixtureModel.load(path)


def _as_saved_before_the_layered_layout(directory: str) -> None:
    # Models then named their class spark_gmm.model.GaussianMixtureModel and carried the
    # fit-only checkpointPath among their params.
    for root, _, files in os.walk(directory):
        for name in files:
            file = os.path.join(root, name)
            if name.endswith(".crc"):
                os.remove(file)
            elif os.path.basename(root) == "metadata" and name.startswith("part-"):
                metadata = json.loads(open(file).read())
                if metadata["class"] == "spark_gmm.ml.model.GaussianMixtureModel":
                    metadata["class"] = "spark_gmm.model.GaussianMixtureModel"
                    metadata["paramMap"]["checkpointPath"] = "/tmp/old.json"
                    open(file, "w").write(json.dumps(metadata))


def test_models_saved_by_earlier_versions_still_load(spark, data, fitted, tmp_path) -> None:
    _, df = data
    fitted.save(str(tmp_path / "model"))
    PipelineModel(stages=[fitted]).save(str(tmp_path / "pipeline"))
    _as_saved_before_the_layered_layout(str(tmp_path))
    assert "spark_gmm.model.GaussianMixtureModel" in open(
        next((tmp_path / "model" / "metadata").glob("part-*"))).read()
    for loaded in (GaussianMixtureModel.load(str(tmp_path / "model")),
                   PipelineModel.load(str(tmp_path / "pipeline")).stages[0]):
        assert isinstance(loaded, GaussianMixtureModel)
        assert not loaded.hasParam("checkpointPath")
        np.testing.assert_array_equal(loaded.covariances, fitted.covariances)
        assert ([r.prediction for r in loaded.transform(df).collect()]
                == [r.prediction for r in fitted.transform(df).collect()])


def test_models_do_not_carry_the_fit_only_checkpoint_path(data, tmp_path) -> None:
    estimator = GaussianMixture(k=2, seed=1, maxIter=2, checkpointPath=str(tmp_path / "c.json"))
    model = estimator.fit(data[1])
    assert estimator.getCheckpointPath() == str(tmp_path / "c.json")
    assert not model.hasParam("checkpointPath")
    model.save(str(tmp_path / "model"))
    metadata = open(next((tmp_path / "model" / "metadata").glob("part-*"))).read()
    assert "checkpointPath" not in metadata


def _edit_metadata(directory: str, edit) -> None:
    # Rewrites the saved model's metadata line (and drops the checksums it no longer has).
    for file in (directory / "metadata").iterdir():
        if file.name.startswith("part-"):
            metadata = json.loads(file.read_text())
            edit(metadata)
            file.write_text(json.dumps(metadata))
        elif file.name.endswith(".crc"):
            file.unlink()


def test_a_summary_field_from_a_later_version_is_ignored(data, fitted, tmp_path) -> None:
    fitted.save(str(tmp_path / "model"))
    _edit_metadata(tmp_path / "model",
                   lambda metadata: metadata["summary"].update(fieldOfALaterVersion=[1, 2]))
    loaded = GaussianMixtureModel.load(str(tmp_path / "model"))
    assert loaded.summary.logLikelihood == fitted.summary.logLikelihood
    assert loaded.summary == fitted.summary  # every saved member, the columns too


def test_the_run_record_is_not_saved_with_the_model(data, fitted, tmp_path) -> None:
    fitted.save(str(tmp_path / "model"))
    metadata = open(next((tmp_path / "model" / "metadata").glob("part-*"))).read()
    for telemetry in ("residentPasses", "jobPasses", "storedBytes", "passSeconds",
                      "phaseSeconds", "iterationSeconds"):
        assert hasattr(fitted.runRecord, telemetry)
        assert telemetry not in metadata
    loaded = GaussianMixtureModel.load(str(tmp_path / "model"))
    assert fitted.hasRunRecord and not loaded.hasRunRecord
    with pytest.raises(RuntimeError, match="not saved with it"):
        _ = loaded.runRecord
    with pytest.raises(RuntimeError, match="loaded"):
        _ = loaded.summary.predictions


def test_a_model_saved_with_telemetry_in_its_summary_still_loads(data, fitted,
                                                                 tmp_path) -> None:
    # The previous format's summary: the model's facts and the run's telemetry in one dict.
    s = fitted.summary
    previous = {
        "logLikelihood": s.logLikelihood, "logLikelihoodHistory": s.logLikelihoodHistory,
        "numIter": s.numIter, "converged": s.converged, "clusterSizes": s.clusterSizes,
        "weightSum": s.weightSum, "numFeatures": s.numFeatures,
        "covarianceType": s.covarianceType, "iterationSeconds": [0.5] * s.numIter,
        "residentPasses": 7, "jobPasses": 1, "phaseSeconds": {"storing": 1.0, "em": 2.0},
        "storedBytes": 14400, "entropy": s.entropy,
        "restartLogLikelihoodHistories": s.restartLogLikelihoodHistories,
        "passSeconds": {},
    }
    fitted.save(str(tmp_path / "model"))
    _edit_metadata(tmp_path / "model", lambda metadata: metadata.update(summary=previous))
    _as_saved_before_the_layered_layout(str(tmp_path))
    loaded = GaussianMixtureModel.load(str(tmp_path / "model"))
    assert loaded.summary == fitted.summary
    assert (loaded.summary.k, loaded.summary.featuresCol) == (3, "features")
    assert not loaded.hasRunRecord
    np.testing.assert_array_equal(loaded.means, fitted.means)


def test_run_record_counts_the_block_bytes_the_fit_kept(data, fitted) -> None:
    x, _ = data
    assert fitted.runRecord.storedBytes == 8 * x.shape[0] * x.shape[1]  # 8 bytes per value
    assert set(fitted.runRecord.phaseSeconds) == {"storing", "initialisation", "em"}
    assert len(fitted.runRecord.iterationSeconds) == fitted.summary.numIter
