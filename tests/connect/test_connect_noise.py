"""GaussianMixture(noise=True) on a Spark Connect session: the noise weight and volume travel
in the passes' wire messages, the fit equals the row-by-row reference EM, and the model
transforms, saves and loads there."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from tests.connect.cases import data, frame
from tests.helpers import dense_covariances, initial_parameters, noise_reference_em

pytestmark = pytest.mark.slow


def test_a_noise_fit_on_connect_equals_the_reference(connect, tmp_path) -> None:
    from spark_gmm.runtime.connect import is_connect

    df = frame(connect).cache()
    assert is_connect(df)
    x, w = data()
    start = initial_parameters(x, 3, "full", seed=2)
    model = (GaussianMixture(k=3, noise=True, noiseInitialWeight=0.2, maxIter=6, tol=0.0,
                             weightCol="w")
             .setInitialModel(GaussianMixtureModel.fromArrays(
                 start.weights, start.means, start.covariances, "full"))
             .fit(df))
    log_volume = float(np.log(np.prod(x.max(axis=0) - x.min(axis=0))))
    assert abs(model.noiseLogVolume - log_volume) < 1e-12
    ref = noise_reference_em(x, w, start.with_noise(0.2, log_volume), 6)
    np.testing.assert_allclose(model.weights, ref[0], rtol=0, atol=1e-9)
    assert abs(model.noiseWeight - ref[1]) < 1e-9
    np.testing.assert_allclose(model.means, ref[2], rtol=0, atol=1e-9)
    np.testing.assert_allclose(dense_covariances(model.parameters), ref[3], rtol=0, atol=1e-9)
    rows = model.transform(df).orderBy("id").select("prediction", "probability").collect()
    probability = np.array([r.probability.toArray() for r in rows])
    assert probability.shape == (len(x), 4)
    best = np.argmax(probability, axis=1)
    assert [r.prediction for r in rows] == np.where(best == 3, -1, best).tolist()
    path = str(tmp_path / "noise")
    model.write().overwrite().save(path)
    loaded = GaussianMixtureModel.load(path)
    assert loaded.noiseWeight == model.noiseWeight
    assert loaded.noiseLogVolume == model.noiseLogVolume
    assert loaded.summary.noiseSize == model.summary.noiseSize
