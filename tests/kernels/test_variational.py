"""kernels/variational.py against scipy.special and scikit-learn's BayesianGaussianMixture:
the special functions, one variational M-step from given responsibilities, the E-step as a
Gaussian mixture's, and one iteration's lower bound, for every covariance type and both
weight priors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sp

from spark_gmm.kernels import COVARIANCE_TYPES, block_statistics
from spark_gmm.kernels.variational import (
    WEIGHT_PRIOR_TYPES,
    betaln,
    digamma,
    gammaln,
    lower_bound,
    variational_m_step,
)
from tests.helpers import (
    initial_parameters,
    make_mixture,
    relative_difference,
    scipy_responsibilities,
    sklearn_variational_prior,
)

CASES = [(t, w) for t in COVARIANCE_TYPES for w in WEIGHT_PRIOR_TYPES]
ARGUMENTS = np.concatenate([np.geomspace(1e-4, 1e5, 3001), [0.5, 1.0, 9.999, 10.0, 10.001]])


def test_digamma_equals_scipy() -> None:
    ours, theirs = digamma(ARGUMENTS), sp.digamma(ARGUMENTS)
    # Absolute near its root (1.4616…), relative elsewhere.
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-14)
    assert digamma(1.4616321449683622) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="positive"):
        digamma(np.array([1.0, 0.0]))


def test_gammaln_and_betaln_equal_scipy() -> None:
    np.testing.assert_allclose(gammaln(ARGUMENTS), sp.gammaln(ARGUMENTS), rtol=1e-14,
                               atol=1e-14)
    a, b = ARGUMENTS[::7], ARGUMENTS[::-7]
    # log Γ(a) + log Γ(b) − log Γ(a + b): exact to rounding of its terms' magnitude.
    scale = np.abs(sp.gammaln(a)) + np.abs(sp.gammaln(b)) + np.abs(sp.gammaln(a + b))
    assert np.all(np.abs(betaln(a, b) - sp.betaln(a, b)) <= 1e-14 * scale + 1e-14)


def _sklearn_model(x, resp, covariance_type, weight_type):
    from sklearn.mixture import BayesianGaussianMixture

    model = BayesianGaussianMixture(n_components=resp.shape[1],
                                    covariance_type=covariance_type,
                                    weight_concentration_prior_type=weight_type)
    model._check_parameters(x)
    model._initialize(x, resp)
    return model


@pytest.fixture(scope="module")
def rows():
    x, *_ = make_mixture(n=300, seed=5, k=3, offset=20.0)
    return x


@pytest.mark.parametrize(("covariance_type", "weight_type"), CASES)
def test_m_step_from_responsibilities_equals_sklearns_initialize(rows, covariance_type,
                                                                   weight_type) -> None:
    k = 5
    resp = scipy_responsibilities(rows, initial_parameters(rows, k, covariance_type, seed=3))
    model = _sklearn_model(rows, resp, covariance_type, weight_type)
    prior = sklearn_variational_prior(model, weight_type)
    start = initial_parameters(rows, k, covariance_type, seed=3)
    [stats] = block_statistics(rows, None, [start], exact=True)
    posterior = variational_m_step(stats, covariance_type, prior, model.reg_covar)
    assert relative_difference(posterior.means, model.means_) < 1e-10
    assert relative_difference(posterior.covariances, model.covariances_) < 1e-10
    assert relative_difference(posterior.mean_precision, model.mean_precision_) < 1e-12
    assert relative_difference(posterior.dof, np.broadcast_to(model.degrees_of_freedom_,
                                                              (k,))) < 1e-12
    assert relative_difference(posterior.weight_concentration,
                               np.asarray(model.weight_concentration_)) < 1e-12
    model._set_parameters(model._get_parameters())  # its weights_
    assert relative_difference(posterior.weights, model.weights_) < 1e-12


@pytest.mark.parametrize(("covariance_type", "weight_type"), CASES)
def test_e_step_mixture_and_lower_bound_equal_sklearns_iteration(rows, covariance_type,
                                                                 weight_type) -> None:
    k = 4
    start = initial_parameters(rows, k, covariance_type, seed=8)
    model = _sklearn_model(rows, scipy_responsibilities(rows, start), covariance_type,
                           weight_type)
    prior = sklearn_variational_prior(model, weight_type)
    [stats] = block_statistics(rows, None, [start], exact=True)
    posterior = variational_m_step(stats, covariance_type, prior, model.reg_covar)
    mixture, lse = posterior.mixture()
    # The Gaussian mixture's responsibilities are scikit-learn's variational ones.
    log_norm, log_resp = model._estimate_log_prob_resp(rows)
    np.testing.assert_allclose(scipy_responsibilities(rows, mixture), np.exp(log_resp),
                               rtol=1e-9, atol=1e-13)
    # One iteration: E-step, M-step, lower bound, both ways.
    model._m_step(rows, log_resp)
    theirs = float(np.ravel(model._compute_lower_bound(log_resp, log_norm.sum()))[0])
    [stats] = block_statistics(rows, None, [mixture], exact=True)
    updated = variational_m_step(stats, covariance_type, prior, model.reg_covar)
    assert abs(lower_bound(stats, mixture, lse, updated) - theirs) / abs(theirs) < 1e-11
    assert relative_difference(updated.covariances, model.covariances_) < 1e-10
    assert relative_difference(updated.means, model.means_) < 1e-10
