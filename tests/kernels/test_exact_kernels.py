"""The exact kernels, the statistics and the M-step against independent references (scipy,
closed forms). Spark-free."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from spark_gmm.errors import CovarianceError
from spark_gmm.kernels import (
    COVARIANCE_TYPES,
    GaussianParameters,
    SufficientStatistics,
    block_statistics,
    covariance_of,
    log_gaussian_density,
    log_responsibilities,
    log_sum_exp,
    m_step,
    merge_all,
)
from tests.helpers import (
    dense_covariances,
    initial_parameters,
    make_mixture,
    mixtures,
    random_parameters,
)

RNG = np.random.default_rng(42)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_density_matches_scipy(covariance_type: str) -> None:
    params = random_parameters(covariance_type)
    x = RNG.normal(size=(500, 4)) * 4
    ours = log_gaussian_density(x, params)
    for k in range(params.n_components):
        ref = multivariate_normal(params.means[k], dense_covariances(params)[k]).logpdf(x)
        np.testing.assert_allclose(ours[:, k], ref, rtol=1e-10, atol=1e-10)


def test_log_sum_exp_matches_scipy_and_handles_extremes() -> None:
    values = RNG.normal(size=(100, 5)) * 1000
    np.testing.assert_allclose(log_sum_exp(values), logsumexp(values, axis=1), rtol=1e-12)
    assert log_sum_exp(np.array([[-np.inf, -np.inf]]))[0] == -np.inf
    np.testing.assert_allclose(log_sum_exp(np.array([[-1e5, -1e5]])), [-1e5 + np.log(2)])


def test_high_dimension_responsibilities_do_not_underflow() -> None:
    # D=200: densities are ~exp(-280) or smaller; exp-then-log would give 0/0 = NaN or 1/K.
    d, k = 200, 3
    rng = np.random.default_rng(3)
    means = rng.normal(size=(k, d)) * 10
    params = GaussianParameters.from_covariances(
        np.full(k, 1 / k), means, np.ones((k, d)), "diag"
    )
    x = means[[0, 1, 2, 1]] + rng.normal(size=(4, d)) * 3
    ll, log_resp = log_responsibilities(x, params)
    # Every density is below exp(-745): exp() of it is 0.0 in float64.
    assert np.all(np.isfinite(ll)) and np.all(ll < -745)
    reference = logsumexp(np.column_stack([
        np.log(1 / k) + multivariate_normal(means[j], np.eye(d)).logpdf(x) for j in range(k)
    ]), axis=1)
    np.testing.assert_allclose(ll, reference, rtol=1e-12)
    resp = np.exp(log_resp)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(resp.argmax(axis=1), [0, 1, 2, 1])
    assert resp.max(axis=1).min() > 0.999


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_split_and_merge_equals_whole(covariance_type: str) -> None:
    params = random_parameters(covariance_type)
    x = RNG.normal(size=(1000, 4)) * 3
    w = RNG.uniform(0, 2, size=1000)
    [whole] = block_statistics(x, w, [params], count_assignments=True)
    parts = [block_statistics(x[a:b], w[a:b], [params], count_assignments=True) for a, b in
             [(0, 1), (1, 333), (333, 334), (334, 1000)]]
    merged = parts[0]
    for p in parts[1:]:
        merged = merge_all(merged, p)
    # associativity: a different bracketing gives the same result
    other = merge_all(parts[0], merge_all(parts[1], merge_all(parts[2], parts[3])))
    for candidate in (merged[0], other[0]):
        for name in ("resp_sum", "first", "second", "assigned"):
            np.testing.assert_allclose(getattr(candidate, name), getattr(whole, name),
                                       rtol=1e-12, atol=1e-9)
        assert candidate.row_count == whole.row_count == 1000
        np.testing.assert_allclose(candidate.log_likelihood, whole.log_likelihood, rtol=1e-12)
        np.testing.assert_allclose(candidate.weight_sum, w.sum(), rtol=1e-12)
    zero = SufficientStatistics.zeros(params, count_assignments=True)
    assert np.array_equal(zero.merge(whole).second, whole.second)
    assert whole.assigned.sum() == 1000
    [uncounted] = block_statistics(x, w, [params])
    assert uncounted.assigned is None
    for name in ("resp_sum", "first", "second"):
        np.testing.assert_array_equal(getattr(uncounted, name), getattr(whole, name))
    with pytest.raises(ValueError, match="counted assignments"):
        whole.merge(uncounted)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_offset_data_gives_the_same_covariances(covariance_type: str) -> None:
    x, *_ = make_mixture(n=1000, seed=7)
    # Quantise so that x + 1e12 is exactly representable: any difference is then ours.
    x = np.round((x - x.mean(axis=0)) * 256) / 256
    params = initial_parameters(x, 3, covariance_type)
    offset = 1e12
    [centred] = block_statistics(x, None, [params])
    # The fit path: rows far from the origin, centred by the data mean before any product.
    [far] = block_statistics(x + offset, None, [params], center=np.full(3, offset))
    a, _ = m_step(centred, covariance_type, 1e-6)
    b, _ = m_step(far, covariance_type, 1e-6)
    np.testing.assert_allclose(b.covariances, a.covariances, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b.means, a.means, rtol=1e-12, atol=1e-12)


def test_offset_second_moments_without_global_centring() -> None:
    # Even with no global centre, moments about the broadcast means keep the covariances.
    rng = np.random.default_rng(11)
    x = rng.normal(size=(5000, 2)) * [1.0, 3.0] + 1e12
    params = GaussianParameters.from_covariances(
        [1.0], [[1e12, 1e12]], [[[1.0, 0.0], [0.0, 1.0]]], "full")
    [stats] = block_statistics(x, None, [params])
    new, _ = m_step(stats, "full", 0.0)
    reference = np.cov((x - 1e12).T, bias=True)
    np.testing.assert_allclose(new.covariances[0], reference, rtol=1e-6)


def test_collapsed_component_is_reseeded_not_nan(caplog: pytest.LogCaptureFixture) -> None:
    x, *_ = make_mixture(n=500, seed=1, k=2)
    far_away = np.array([[1e4, 1e4, 1e4], [0.0, 0.0, 0.0]]) + x.mean(axis=0)
    params = GaussianParameters.from_covariances(
        [0.5, 0.5], far_away, np.stack([np.eye(3)] * 2), "full")
    [stats] = block_statistics(x, None, [params])
    with caplog.at_level("WARNING"):
        new, collapsed = m_step(stats, "full", 1e-6)
    assert collapsed == [0]
    assert "collapsed" in caplog.text
    assert np.all(np.isfinite(new.means)) and np.all(np.isfinite(new.covariances))
    np.testing.assert_allclose(new.weights, [0.5, 0.5])
    assert not np.allclose(new.means[0], new.means[1])


def test_singular_covariance_names_component_and_fix() -> None:
    cov = np.stack([np.eye(2), np.array([[1.0, 1.0], [1.0, 1.0]])])
    with pytest.raises(CovarianceError, match=r"component 1.*regCovar"):
        GaussianParameters.from_covariances([0.5, 0.5], np.zeros((2, 2)), cov, "full")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES[:3])
def test_constant_feature_gets_exactly_reg_covar(covariance_type: str) -> None:
    # A feature without spread has zero scatter in every component: its variance is then
    # regCovar alone, and it covaries with nothing (closed form).
    x, *_ = make_mixture(n=300, seed=2)
    x[:, 1] = 4.0
    params = initial_parameters(np.column_stack([x[:, 0], x[:, 1] + 1e-3 * np.arange(300) % 2,
                                                 x[:, 2]]), 3, covariance_type)
    [stats] = block_statistics(x, None, [params])
    new, _ = m_step(stats, covariance_type, 1e-6)
    dense = covariance_of(covariance_type).dense(new.covariances, 3, 3)
    np.testing.assert_allclose(dense[:, 1, 1], 1e-6, rtol=1e-6)
    np.testing.assert_allclose(dense[:, 1, [0, 2]], 0.0, atol=1e-12)
    assert np.all(dense[:, 0, 0] > 1e-2) and np.all(dense[:, 2, 2] > 1e-2)


@settings(max_examples=60, deadline=None)
@given(mixtures())
def test_responsibilities_are_distributions(case) -> None:
    x, params = case
    log_likelihood, log_resp = log_responsibilities(x, params)
    resp = np.exp(log_resp)
    assert np.all(np.isfinite(log_likelihood)) and np.all(np.isfinite(log_resp))
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-10)
