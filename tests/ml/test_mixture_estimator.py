"""What both estimators share (ml/mixture_estimator.py), without Spark: the initial model is
kept by copy (the copy's own params apart), and the params writer is ParamsWriter."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm import BayesianGaussianMixture, GaussianMixture, GaussianMixtureModel
from spark_gmm.kernels import GaussianParameters
from spark_gmm.ml.persistence import ParamsWriter


@pytest.mark.parametrize("estimator_class", [GaussianMixture, BayesianGaussianMixture])
def test_the_initial_model_survives_copy_and_the_writer_is_params_writer(
        estimator_class) -> None:
    initial = GaussianMixtureModel(GaussianParameters.from_covariances(
        np.array([0.5, 0.5]), np.array([[0.0], [3.0]]), np.array([1.0, 1.0]), "spherical"))
    estimator = estimator_class(k=2)
    assert estimator._initial_model is None and estimator.copy()._initial_model is None
    assert estimator.setInitialModel(initial) is estimator
    copied = estimator.copy({estimator.maxIter: 7})
    assert copied is not estimator and copied._initial_model is initial
    assert copied.getMaxIter() == 7 and estimator.getMaxIter() == 100
    assert type(estimator.write()) is ParamsWriter
