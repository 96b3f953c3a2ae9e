"""fit/variational.py on rows in memory (the statistics of the packed kernel, as the
executors compute them) against scikit-learn's BayesianGaussianMixture from the same
responsibilities: whole fits for every covariance type and weight prior, pruning, row
weights, and the priors' defaults and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spark_gmm.errors import InvalidInputError
from spark_gmm.fit.driver import FitSettings
from spark_gmm.fit.prior import PriorSettings
from spark_gmm.fit.variational import (
    VariationalSettings,
    resolve_variational_prior,
    run_variational,
    start_runs,
)
from spark_gmm.kernels import COVARIANCE_TYPES, ConjugatePrior, block_statistics, covariance_of
from spark_gmm.kernels.variational import WEIGHT_PRIOR_TYPES
from tests.helpers import (
    initial_parameters,
    make_mixture,
    relative_difference,
    scipy_responsibilities,
    sklearn_bayesian_differences,
    sklearn_bayesian_fit,
    sklearn_variational_prior,
)

CASES = [(t, w) for t in COVARIANCE_TYPES for w in WEIGHT_PRIOR_TYPES]


def _local_fit(x, start, prior, weights=None, max_iter=100, tol=1e-3, reg_covar=1e-6):
    center = x.mean(axis=0)

    def statistics(models):
        return block_statistics(x, weights, list(models), center)

    runs = start_runs([start.shifted(-center)], statistics, prior.shifted(-center), reg_covar)
    run_variational(runs, statistics, prior.shifted(-center), reg_covar, max_iter, tol)
    return runs[0], runs[0].posterior.shifted(center)


def _compare(run, posterior, model) -> dict[str, float]:
    return sklearn_bayesian_differences({
        "lowerBounds": run.lower_bounds, "weights": posterior.weights,
        "means": posterior.means, "covariances": posterior.covariances,
        "weightConcentration": posterior.weight_concentration,
        "meanPrecision": posterior.mean_precision, "degreesOfFreedom": posterior.dof}, model)


@pytest.fixture(scope="module")
def rows():
    x, *_ = make_mixture(n=400, seed=17, k=3, offset=100.0)
    return x


@pytest.mark.parametrize(("covariance_type", "weight_type"), CASES)
def test_fit_equals_sklearn_from_the_same_responsibilities(rows, covariance_type,
                                                           weight_type) -> None:
    k = 5
    start = initial_parameters(rows, k, covariance_type, seed=4)
    model = sklearn_bayesian_fit(rows, scipy_responsibilities(rows, start), covariance_type,
                                 weight_type, max_iter=300)
    run, posterior = _local_fit(rows, start, sklearn_variational_prior(model, weight_type),
                                max_iter=300)
    assert run.n_iter == model.n_iter_ and run.converged and model.converged_
    differences = _compare(run, posterior, model)
    assert max(differences.values()) < 1e-8, differences


def test_a_small_dirichlet_process_concentration_prunes_the_surplus_components() -> None:
    x, *_ = make_mixture(n=600, seed=23, k=3)
    k = 8
    start = initial_parameters(x, k, "full", seed=6)
    model = sklearn_bayesian_fit(x, scipy_responsibilities(x, start), "full",
                                 "dirichlet_process", max_iter=500,
                                 weight_concentration_prior=0.01)
    run, posterior = _local_fit(x, start, sklearn_variational_prior(model, "dirichlet_process"),
                                max_iter=500)
    assert run.n_iter == model.n_iter_
    assert max(_compare(run, posterior, model).values()) < 1e-8
    # Components without rows keep a weight of about 1/N (1/600 here).
    assert np.sum(model.weights_ > 0.01) == np.sum(posterior.weights > 0.01) == 3
    assert np.all(np.sort(model.weights_)[:5] < 0.002)


def test_row_weights_count_as_repeated_rows(rows) -> None:
    repeats = np.random.default_rng(3).integers(1, 4, size=rows.shape[0])
    start = initial_parameters(rows, 4, "diag", seed=2)
    repeated = np.repeat(rows, repeats, axis=0)
    model = sklearn_bayesian_fit(repeated, scipy_responsibilities(repeated, start), "diag",
                                 "dirichlet_process")
    center = rows.mean(axis=0)
    prior = sklearn_variational_prior(model, "dirichlet_process")

    def statistics(models):
        return block_statistics(rows, repeats.astype(float), list(models), center)

    runs = start_runs([start.shifted(-center)], statistics, prior.shifted(-center), 1e-6)
    run_variational(runs, statistics, prior.shifted(-center), 1e-6, 100, 1e-3)
    assert runs[0].n_iter == model.n_iter_
    assert max(_compare(runs[0], runs[0].posterior.shifted(center), model).values()) < 1e-8


def _settings(**priors) -> VariationalSettings:
    fit = FitSettings("features", None, 4, "diag", 100, 1e-3, 1e-6, "k-means||", 1, 1, 2,
                      None)
    return VariationalSettings(fit, **priors)


def test_the_priors_take_sklearns_defaults() -> None:
    seen = []

    def resolve(settings: PriorSettings) -> ConjugatePrior:
        seen.append(settings)
        return ConjugatePrior(np.zeros(3), settings.shrinkage, settings.dof, np.ones(3))

    prior = resolve_variational_prior(_settings(), np.zeros(3), resolve, 3)
    assert (prior.weight_concentration, prior.mean_precision, prior.dof) == (0.25, 1.0, 3.0)
    assert prior.weight_type == "dirichlet_process"
    assert seen == [PriorSettings(None, 1.0, 3.0, None)]
    set_prior = resolve_variational_prior(
        _settings(weight_concentration=0.01, mean_precision=2.0, dof=5.0,
                  weight_type="dirichlet_distribution"), np.zeros(3), resolve, 3)
    assert (set_prior.weight_concentration, set_prior.mean_precision, set_prior.dof) == (
        0.01, 2.0, 5.0)


def test_bad_priors_name_the_bayesian_params() -> None:
    def resolve(settings: PriorSettings):
        return settings.resolve(1, "diag", np.zeros(3), np.eye(3), np.zeros(3))

    with pytest.raises(InvalidInputError, match=r"degreesOfFreedomPrior must be > D − 1 = 2"):
        resolve_variational_prior(_settings(dof=2.0), np.zeros(3), resolve, 3)
    with pytest.raises(InvalidInputError, match="meanPrior has 2 values"):
        resolve_variational_prior(_settings(mean=(1.0, 2.0)), np.zeros(3), resolve, 3)
    with pytest.raises(InvalidInputError, match="covariancePrior has 2 values"):
        resolve_variational_prior(_settings(covariance=(1.0, 2.0)), np.zeros(3), resolve, 3)
    with pytest.raises(InvalidInputError, match="weightConcentrationPriorType must be one of"):
        resolve_variational_prior(_settings(weight_type="dirichlet"), np.zeros(3), resolve, 3)
    # The default covariance prior of each type is scikit-learn's (from np.cov, by hand).
    x, *_ = make_mixture(n=50, seed=1)
    for kind, expected in (("full", np.cov(x.T)), ("diag", np.var(x, axis=0, ddof=1)),
                           ("spherical", np.var(x, axis=0, ddof=1).mean())):
        resolved = PriorSettings(None, 1.0, 3.0, None).resolve(
            1, kind, x.mean(axis=0), np.cov(x.T), x.mean(axis=0))
        assert relative_difference(covariance_of(kind).prior_scale(np.cov(x.T)),
                                   expected) < 1e-14
        assert relative_difference(resolved.scale, expected) < 1e-14


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_components_whose_e_step_weight_underflows_still_equal_sklearn(covariance_type
                                                                      ) -> None:
    # α₀ = 1e-3 and K = 20: the trailing sticks' E[log π_k] fall below −745, so the
    # equivalent mixture's weights are exactly 0 there (scikit-learn keeps them finite).
    x, *_ = make_mixture(n=600, seed=23, k=3)
    k = 20
    start = initial_parameters(x, k, covariance_type, seed=6)
    model = sklearn_bayesian_fit(x, scipy_responsibilities(x, start), covariance_type,
                                 "dirichlet_process", max_iter=500,
                                 weight_concentration_prior=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run, posterior = _local_fit(x, start, sklearn_variational_prior(model, "dirichlet_process"),
                                    max_iter=500)
    assert np.any(posterior.shifted(-x.mean(axis=0)).mixture()[0].weights == 0)
    assert run.n_iter == model.n_iter_
    assert max(_compare(run, posterior, model).values()) < 1e-8
