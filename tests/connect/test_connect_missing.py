"""GaussianMixture(missingFeatures="marginalize") on a Spark Connect session: weighted rows with
missing features fit to the row-by-row reference EM; transform labels and imputes them as the
reference does; the model saves and loads with its rule."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from tests.connect.cases import PARTITIONS, data
from tests.helpers import (
    initial_parameters,
    missing_reference_em,
    missing_reference_estep,
    with_missing,
)

pytestmark = pytest.mark.slow


def test_a_marginalized_fit_on_connect_equals_the_reference(connect, tmp_path) -> None:
    from pyspark.ml.linalg import Vectors

    from spark_gmm.runtime.connect import is_connect

    x, w = data()
    x, w = with_missing(x[:600], share=0.3, most=2, seed=3), w[:600]
    rows = [(i, Vectors.dense(r), float(v)) for i, (r, v) in enumerate(zip(x, w))]
    df = connect.createDataFrame(rows, ["id", "features", "w"]).repartition(PARTITIONS, "id")
    df = df.cache()
    assert is_connect(df)
    start = initial_parameters(x[~np.isnan(x).any(axis=1)], 3, "full", seed=2)
    model = (GaussianMixture(k=3, maxIter=5, tol=0.0, weightCol="w",
                             missingFeatures="marginalize", imputedCol="imputed")
             .setInitialModel(GaussianMixtureModel.fromArrays(
                 start.weights, start.means, start.covariances, "full"))
             .fit(df))
    ref, log_likelihood, _ = missing_reference_em(x, w, start, 5, 1e-6)
    np.testing.assert_allclose(model.weights, ref.weights, rtol=1e-9)
    np.testing.assert_allclose(model.means, ref.means, rtol=1e-9)
    np.testing.assert_allclose(model.covariances, ref.covariances, rtol=1e-9, atol=1e-12)
    assert model.summary.logLikelihood == pytest.approx(log_likelihood, rel=1e-9)
    _, resp, completed, _ = missing_reference_estep(x, model.parameters)
    out = model.transform(df).orderBy("id").select("prediction", "imputed").collect()
    assert [r.prediction for r in out] == resp.argmax(axis=1).tolist()
    np.testing.assert_allclose([r.imputed.toArray() for r in out],
                               np.einsum("nk,nkd->nd", resp, completed), rtol=1e-9)
    path = str(tmp_path / "marginal")
    model.write().overwrite().save(path)
    loaded = GaussianMixtureModel.load(path)
    assert loaded.getMissingFeatures() == "marginalize"
    first = np.flatnonzero(np.isnan(x).any(axis=1))[0]
    assert loaded.predict(x[first]) == resp[first].argmax()
