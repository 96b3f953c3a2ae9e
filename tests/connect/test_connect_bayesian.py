"""BayesianGaussianMixture on a Spark Connect session: its passes are EM's statistics
requests, served by one query each; the fit equals scikit-learn's from the same
responsibilities, and the model transforms, saves and loads there."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import BayesianGaussianMixture, BayesianGaussianMixtureModel, GaussianMixtureModel
from tests.connect.cases import data, frame
from tests.helpers import (
    initial_parameters,
    scipy_responsibilities,
    sklearn_bayesian_differences,
    sklearn_bayesian_fit,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_a_bayesian_fit_on_connect_equals_sklearn(connect, tmp_path, covariance_type) -> None:
    from spark_gmm.runtime.connect import is_connect

    df = frame(connect).cache()
    assert is_connect(df)
    x, _ = data()
    k = 5
    start = initial_parameters(x, k, covariance_type, seed=2)
    theirs = sklearn_bayesian_fit(x, scipy_responsibilities(x, start), covariance_type,
                                  "dirichlet_process", weight_concentration_prior=0.01)
    model = (BayesianGaussianMixture(k=k, covarianceType=covariance_type,
                                     weightConcentrationPrior=0.01)
             .setInitialModel(GaussianMixtureModel.fromArrays(
                 start.weights, start.means, start.covariances, covariance_type))
             .fit(df))
    assert model.summary.numIter == theirs.n_iter_
    differences = sklearn_bayesian_differences({
        "lowerBounds": model.summary.lowerBoundHistory, "weights": model.weights,
        "means": model.means, "covariances": model.covariances,
        "weightConcentration": model.weightConcentration,
        "meanPrecision": model.meanPrecision, "degreesOfFreedom": model.degreesOfFreedom},
        theirs)
    assert max(differences.values()) < 1e-8, differences
    rows = model.transform(df).orderBy("id").select("features", "probability").collect()
    features = np.array([r.features.toArray() for r in rows])
    np.testing.assert_allclose([r.probability.toArray() for r in rows],
                               theirs.predict_proba(features), rtol=1e-8, atol=1e-12)
    path = str(tmp_path / "bayesian")
    model.write().overwrite().save(path)
    loaded = BayesianGaussianMixtureModel.load(path)
    np.testing.assert_array_equal(loaded.covariances, model.covariances)
    assert loaded.summary == model.summary
