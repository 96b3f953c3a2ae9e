"""Information criteria against scikit-learn's: our log-likelihood of its fitted model and our
parameter counts give its BIC and AIC."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from spark_gmm.kernels import COVARIANCE_TYPES, GaussianParameters, log_responsibilities
from spark_gmm.ml.summary import GaussianMixtureSummary
from tests.helpers import make_mixture


def _sklearn_parameters(fitted: SkGaussianMixture, covariance_type: str) -> GaussianParameters:
    return GaussianParameters.from_covariances(fitted.weights_, fitted.means_,
                                               fitted.covariances_, covariance_type)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bic_and_aic_equal_scikit_learns(covariance_type: str) -> None:
    x, *_ = make_mixture(n=700, seed=12, k=3, n_features=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = SkGaussianMixture(3, covariance_type=covariance_type, random_state=0,
                                      max_iter=50).fit(x)
    # Our log-likelihood of scikit-learn's model, from our own kernels...
    log_likelihood, _ = log_responsibilities(x, _sklearn_parameters(reference,
                                                                     covariance_type))
    np.testing.assert_allclose(log_likelihood.sum(), reference.score(x) * len(x), rtol=1e-12)
    # ... and our criteria from it, with our parameter counts.
    summary = GaussianMixtureSummary(
        logLikelihood=float(log_likelihood.sum()), logLikelihoodHistory=[], numIter=1,
        converged=True, clusterSizes=[0, 0, 0], weightSum=float(len(x)), numFeatures=4,
        covarianceType=covariance_type)
    np.testing.assert_allclose(summary.bic, reference.bic(x), rtol=1e-12)
    np.testing.assert_allclose(summary.aic, reference.aic(x), rtol=1e-12)
