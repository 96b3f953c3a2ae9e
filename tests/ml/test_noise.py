"""GaussianMixture(noise=True) on a local[2] SparkSession: a uniform noise component
(Banfield & Raftery 1993) against an independent EM, its labels, BIC, save/load, sampling."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.kernels import n_free_parameters
from tests.helpers import dense_covariances, noise_reference_em, to_dataframe


def _clusters_and_background(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters of 600 rows in [-20, 20]², and 300 rows uniform over that
    square: (rows, truth), truth −1 for the background."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-10.0, -8.0], [9.0, -6.0], [0.0, 11.0]])
    clusters = [rng.normal(size=(600, 2)) * [1.0, 0.7] + c for c in centres]
    background = rng.uniform(-20, 20, size=(300, 2))
    x = np.vstack([*clusters, background])
    truth = np.concatenate([np.repeat([0, 1, 2], 600), np.full(300, -1)])
    order = rng.permutation(x.shape[0])
    return x[order], truth[order]


@pytest.fixture(scope="module")
def data(spark):
    x, truth = _clusters_and_background()
    return x, truth, to_dataframe(spark, x, partitions=3).cache()


@pytest.fixture(scope="module")
def fitted(data) -> GaussianMixtureModel:
    return GaussianMixture(k=3, noise=True, seed=3, maxIter=200, tol=1e-6).fit(data[2])


def test_background_rows_are_labelled_noise_and_cluster_rows_keep_theirs(data, fitted
                                                                         ) -> None:
    x, truth, df = data
    scored = fitted.transform(df).select("features", "prediction", "probability").collect()
    rows = np.array([r.features.toArray() for r in scored])
    prediction = np.array([r.prediction for r in scored])
    order = np.lexsort(rows.T[::-1])
    truth = truth[np.lexsort(x.T[::-1])]
    prediction = prediction[order]
    background = truth == -1
    assert (prediction[background] == -1).mean() >= 0.80
    assert (prediction[~background] != -1).mean() >= 0.97
    # Each cluster keeps one label of its own.
    for j in range(3):
        labels, counts = np.unique(prediction[truth == j], return_counts=True)
        assert labels[np.argmax(counts)] != -1 and counts.max() >= 0.97 * 600
    probabilities = np.array([r.probability.toArray() for r in scored])
    assert probabilities.shape == (x.shape[0], 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(np.where(np.argmax(probabilities, axis=1) == 3, -1,
                                           np.argmax(probabilities, axis=1)),
                                  [r.prediction for r in scored])
    # The model: its weights and the noise weight sum to 1; V is the rows' bounding box.
    assert abs(fitted.weights.sum() + fitted.noiseWeight - 1.0) < 1e-12
    assert 0.08 < fitted.noiseWeight < 0.2
    box_volume = np.prod(x.max(axis=0) - x.min(axis=0))
    assert abs(fitted.noiseLogVolume - np.log(box_volume)) < 1e-12
    lower, upper = fitted.noiseBox
    np.testing.assert_allclose(lower, x.min(axis=0), atol=1e-12)
    np.testing.assert_allclose(upper, x.max(axis=0), atol=1e-12)
    summary = fitted.summary
    assert summary.noiseSize == int((prediction == -1).sum())
    assert sum(summary.clusterSizes) + summary.noiseSize == x.shape[0]
    assert summary.numParameters == n_free_parameters("full", 3, 2) + 1
    single = [fitted.predict(r) for r in rows[:50]]
    assert single == [r.prediction for r in scored[:50]]


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fit_with_noise_equals_the_row_by_row_reference(spark, data, covariance_type: str
                                                       ) -> None:
    x, _, _ = data
    w = np.random.default_rng(2).uniform(0.5, 2.0, size=x.shape[0])
    rng = np.random.default_rng(4)
    means = x[rng.choice(x.shape[0], size=3, replace=False)]
    variances = x.var(axis=0)
    covariances = (np.stack([np.diag(variances)] * 3) if covariance_type == "full"
                   else np.stack([variances] * 3))
    start = GaussianMixtureModel.fromArrays(np.array([0.2, 0.3, 0.5]), means, covariances,
                                            covariance_type)
    fits = []
    for partitions in (2, 5):
        df = to_dataframe(spark, x, partitions=partitions, extra={"weight": w})
        fits.append(GaussianMixture(k=3, covarianceType=covariance_type, noise=True,
                                    noiseInitialWeight=0.15, maxIter=5, tol=0.0,
                                    weightCol="weight").setInitialModel(start).fit(df))
    model = fits[0]
    log_volume = float(np.log(np.prod(x.max(axis=0) - x.min(axis=0))))
    ref = noise_reference_em(x, w, start.parameters.with_noise(0.15, log_volume), 5)
    np.testing.assert_allclose(model.weights, ref[0], rtol=0, atol=1e-9)
    assert abs(model.noiseWeight - ref[1]) < 1e-9
    np.testing.assert_allclose(model.means, ref[2], rtol=0, atol=1e-9)
    np.testing.assert_allclose(dense_covariances(model.parameters), ref[3], rtol=0, atol=1e-9)
    assert abs(model.summary.logLikelihoodHistory[-1] - ref[4]) < 1e-9 * abs(ref[4])
    # Any partitioning gives the same model.
    other = fits[1]
    np.testing.assert_allclose(other.weights, model.weights, rtol=0, atol=1e-12)
    assert abs(other.noiseWeight - model.noiseWeight) < 1e-12
    np.testing.assert_allclose(other.means, model.means, rtol=0, atol=1e-11)
    np.testing.assert_allclose(other.covariances, model.covariances, rtol=0, atol=1e-11)


def test_noise_model_saves_loads_and_samples(spark, data, fitted, tmp_path) -> None:
    path = str(tmp_path / "noise-model")
    fitted.save(path)
    loaded = GaussianMixtureModel.load(path)
    assert loaded.getNoise() and loaded.noiseWeight == fitted.noiseWeight
    assert loaded.noiseLogVolume == fitted.noiseLogVolume
    np.testing.assert_array_equal(loaded.weights, fitted.weights)
    for a, b in zip(loaded.noiseBox, fitted.noiseBox):
        np.testing.assert_array_equal(a, b)
    assert loaded.summary.noiseSize == fitted.summary.noiseSize
    assert loaded.summary.bic == fitted.summary.bic
    df = data[2].limit(200)
    assert ([r.prediction for r in loaded.transform(df).collect()]
            == [r.prediction for r in fitted.transform(df).collect()])
    # sample(): the noise's rows uniform in its box, label −1, about π_0 of them.
    x, labels = loaded.sample(20000, seed=1)
    noise = labels == -1
    assert abs(noise.mean() - loaded.noiseWeight) < 0.01
    lower, upper = loaded.noiseBox
    assert np.all(x[noise] >= lower) and np.all(x[noise] <= upper)
    np.testing.assert_allclose(x[noise].mean(axis=0), (lower + upper) / 2, atol=0.6)
    drawn = loaded.sampleDataFrame(spark, 2000, seed=2, numPartitions=2).collect()
    assert {r.label for r in drawn} == {-1, 0, 1, 2}


def test_noise_volume_sets_v_and_without_noise_nothing_changes(spark, data) -> None:
    df = data[2]
    model = GaussianMixture(k=3, noise=True, noiseVolume=5000.0, seed=3, maxIter=3).fit(df)
    assert abs(model.noiseLogVolume - np.log(5000.0)) < 1e-12
    lower, upper = model.noiseBox
    assert abs(np.prod(upper - lower) - 5000.0) < 1e-8
    plain = GaussianMixture(k=3, seed=3, maxIter=3).fit(df)
    assert plain.noiseWeight == 0.0 and plain.noiseLogVolume is None and plain.noiseBox is None
    assert plain.summary.noiseSize is None
    assert len(plain.transform(df).first().probability) == 3
    with pytest.raises(ValueError, match="noiseInitialWeight"):
        GaussianMixture(noise=True, noiseInitialWeight=1.0).fit(df)


def test_select_model_compares_with_and_without_noise(data) -> None:
    from spark_gmm import select_model

    selection = select_model(data[2], k=[3], covarianceTypes=["full"], noise=[False, True],
                             seed=3, maxIter=30)
    assert list(selection.table["noise"]) == [False, True]
    assert set(selection.models) == {(3, "full", False), (3, "full", True)}
    with_noise = selection.models[(3, "full", True)]
    without = selection.models[(3, "full", False)]
    assert with_noise.getNoise() and not without.getNoise()
    # One more free parameter, and on rows with a uniform background a far better fit.
    assert with_noise.summary.numParameters == without.summary.numParameters + 1
    assert selection.best is with_noise
    plain = select_model(data[2], k=[3], covarianceTypes=["full"], seed=3, maxIter=3)
    assert "noise" not in plain.table.columns and set(plain.models) == {(3, "full")}


def test_a_pipeline_with_a_noise_component_saves_and_loads(data, tmp_path) -> None:
    from pyspark.ml import Pipeline, PipelineModel

    df = data[2]
    fitted = Pipeline(stages=[GaussianMixture(k=3, noise=True, seed=3, maxIter=5)]).fit(df)
    path = str(tmp_path / "pipeline")
    fitted.save(path)
    loaded = PipelineModel.load(path)
    [model] = loaded.stages
    assert model.noiseWeight == fitted.stages[0].noiseWeight > 0
    ours = [r.prediction for r in loaded.transform(df).collect()]
    assert ours == [r.prediction for r in fitted.transform(df).collect()]
    assert -1 in ours
