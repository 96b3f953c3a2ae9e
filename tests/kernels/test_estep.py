"""The E-step: the two-GEMM packed-feature kernel against scipy, direct sums and the exact
kernel; the split between them; responsibilities below the smallest normal double flushed to
0 with nothing else moved."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from spark_gmm.kernels import (
    COVARIANCE_TYPES,
    GaussianParameters,
    block_statistics,
    e_step,
    log_responsibilities,
)
from spark_gmm.kernels.estep import PackedRoute, e_step_routes
from spark_gmm.kernels.flush import exp_flushed_in_place, flush_cut
from spark_gmm.kernels.packed import (
    density_weights,
    normalised_responsibilities,
    packed_chunk_rows,
    packed_features,
    unpack_moments,
)
from spark_gmm.kernels.split import SplitMixture
from tests.helpers import dense_covariances, random_parameters


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_packed_log_density_matches_scipy(covariance_type: str) -> None:
    params = random_parameters(covariance_type, k=3, d=5, seed=3)
    x = np.random.default_rng(0).normal(size=(400, 5)) * 3
    ours = density_weights(params) @ packed_features(x, covariance_type)
    for k in range(params.n_components):
        reference = multivariate_normal(params.means[k], dense_covariances(params)[k]).logpdf(x)
        np.testing.assert_allclose(ours[k], reference, rtol=1e-11)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_packed_statistics_equal_exact_statistics(covariance_type: str) -> None:
    rng = np.random.default_rng(5)
    d = 4
    # More rows than one chunk, and not a multiple of it, so chunk edges are crossed.
    n = packed_chunk_rows(covariance_type, d) + 1237
    x = rng.normal(size=(n, d)) * 2 + 0.5
    weights = rng.uniform(0.0, 3.0, size=n)
    models = [random_parameters(covariance_type, k=3, d=d, seed=s) for s in (1, 2)]
    center = x.mean(axis=0)
    [(_, route)] = e_step_routes(models)
    assert isinstance(route, PackedRoute) and not any(s.far.size for s in route.splits)
    packed = block_statistics(x, weights, models, center, count_assignments=True)
    for model, fast in zip(models, packed):
        [exact] = block_statistics(x, weights, [model], center, False, True, exact=True)
        for name in ("resp_sum", "first", "second"):
            np.testing.assert_allclose(getattr(fast, name), getattr(exact, name),
                                       rtol=1e-10, atol=1e-9 * n, err_msg=name)
        assert fast.log_likelihood == pytest.approx(exact.log_likelihood, rel=1e-12)
        assert fast.weight_sum == pytest.approx(exact.weight_sum, rel=1e-15)
        assert fast.row_count == exact.row_count == n
        np.testing.assert_array_equal(fast.assigned, exact.assigned)


@pytest.mark.parametrize("dead_fraction", [0.0, 0.0001, 0.1, 0.5, 0.9, 1.0])
def test_flushed_exp_is_numpy_s_exp_on_normal_results(dead_fraction: float) -> None:
    # Both branches (plain ufunc when few values are flushed, masked otherwise), and the
    # edges: around the cut for K=8, the last subnormals, exact zeros, -inf, NaN.
    rng = np.random.default_rng(5)
    n = 80_000
    values = -rng.exponential(20.0, size=n)
    dead = rng.random(n) < dead_fraction
    values[dead] = -rng.uniform(706.0, 1e5, size=dead.sum())
    cut = flush_cut(8)
    edges = [0.0, cut + 1e-9, cut, cut - 1e-9, -708.5, -745.13, -746.0, -np.inf, np.nan]
    values[: len(edges)] = edges
    expected = np.where(values < cut, 0.0, np.exp(values))  # NaN is not < cut: it stays
    shifted = values.reshape(8, n // 8).copy()
    exp_flushed_in_place(shifted, 8)
    np.testing.assert_array_equal(shifted.reshape(-1), expected)  # NaN == NaN here
    assert shifted.reshape(-1)[1] > 0.0 and shifted.reshape(-1)[3] == 0.0


def test_zero_weight_component_gets_no_responsibility_and_no_nan() -> None:
    params = GaussianParameters.from_covariances(
        [0.0, 1.0], [[0.0, 0.0], [1.0, 1.0]], np.stack([np.eye(2)] * 2), "full")
    x = np.random.default_rng(2).normal(size=(50, 2))
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights)
    resp, log_likelihood, best = normalised_responsibilities(
        density_weights(params) @ packed_features(x, "full"), log_weights, find_best=True)
    assert np.all(resp[0] == 0.0) and np.allclose(resp[1], 1.0)
    np.testing.assert_allclose(
        log_likelihood, multivariate_normal([1.0, 1.0], np.eye(2)).logpdf(x), rtol=1e-12)
    assert np.all(best == 1)


def test_tight_far_component_takes_the_exact_path() -> None:
    # One component of width 1e-4 at distance ~14 from the origin: r ≈ 2e10, where the
    # expansion x xᵀ − μ μᵀ would lose ~ε·r ≈ 4e-6 of the covariance.
    rng = np.random.default_rng(9)
    mean = np.array([10.0, -10.0])
    x = mean + rng.normal(size=(3000, 2)) * 1e-4
    params = GaussianParameters.from_covariances([1.0], [mean], [np.eye(2) * 1e-8], "full")
    assert SplitMixture.of(params).far.tolist() == [0]
    [stats] = block_statistics(x, None, [params])
    reference = (x - mean).T @ (x - mean)  # K = 1: every responsibility is 1
    np.testing.assert_allclose(stats.second[0], reference, rtol=1e-10)
    # The guard matters: the packed expansion really is inaccurate here.
    sums = np.ones((1, len(x))) @ packed_features(x, "full").T
    _, _, packed_second = unpack_moments(sums, params.means, "full")
    error = np.max(np.abs(packed_second[0] - reference) / np.abs(reference).max())
    assert error > 1e-8


def test_mixtures_of_one_pass_may_take_different_paths() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 2))
    near = GaussianParameters.from_covariances([1.0], [[0.1, 0.2]], [np.eye(2)], "full")
    far = GaussianParameters.from_covariances([1.0], [[5e3, 0.0]], [np.eye(2)], "full")
    assert SplitMixture.of(near).far.size == 0 and SplitMixture.of(far).near.size == 0
    together = block_statistics(x, None, [near, far])
    alone = [block_statistics(x, None, [m])[0] for m in (near, far)]
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a.second, b.second)
        assert a.log_likelihood == b.log_likelihood


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scoring_rows_equals_the_exact_kernels_far_from_the_origin(covariance_type: str
                                                                    ) -> None:
    # Scoring centres rows at the mixture mean itself, so an offset of 1e6 changes nothing.
    params = random_parameters(covariance_type, k=3, d=4, seed=8)
    offset = 1e6
    shifted = params.shifted(np.full(4, offset))
    x = np.random.default_rng(3).normal(size=(700, 4)) * 3
    log_likelihood, resp, best = e_step(x + offset, shifted)
    exact_ll, exact_log_resp = log_responsibilities(x, params)
    np.testing.assert_allclose(log_likelihood, exact_ll, rtol=1e-9)
    np.testing.assert_allclose(resp, np.exp(exact_log_resp), atol=1e-9)
    np.testing.assert_array_equal(best, np.argmax(exact_log_resp, axis=1))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_packed_hard_assignment_equals_the_exact_one(covariance_type: str) -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(20_000, 4)) * 3 + 100.0
    weights = rng.uniform(0.0, 2.0, size=len(x))
    params = random_parameters(covariance_type, k=5, d=4, seed=9).shifted(np.full(4, 100.0))
    center = x.mean(axis=0)
    centred = params.shifted(-center)
    assert SplitMixture.of(centred).far.size == 0  # every component on the packed kernel
    [packed] = block_statistics(x, weights, [centred], center, True, True)
    [exact] = block_statistics(x, weights, [centred], center, True, True, exact=True)
    np.testing.assert_array_equal(packed.assigned, exact.assigned)
    assert packed.log_likelihood == exact.log_likelihood == 0.0
    np.testing.assert_allclose(packed.resp_sum, exact.resp_sum, rtol=1e-12)
    np.testing.assert_allclose(packed.first, exact.first, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(packed.second, exact.second, rtol=1e-9, atol=1e-7)


def _near_and_far(covariance_type: str) -> tuple[GaussianParameters, np.ndarray]:
    # Two broad components near the origin and one 1000× tighter far from it (r ≈ 2.5e7;
    # tied: one shared width, so the far one is simply 20× further away).
    d = 3
    means = np.array([[0.5, -0.5, 0.0], [-1.0, 1.0, 0.5], [5.0, 0.0, 0.0]])
    widths = np.array([1.0, 0.8, 1e-3])
    if covariance_type == "tied":
        means[2] = [100.0, 0.0, 0.0]
        widths = np.full(3, 0.02)
    covariances = {"full": np.stack([np.eye(d) * w**2 for w in widths]),
                   "tied": np.eye(d) * widths[0] ** 2,
                   "diag": np.stack([np.full(d, w**2) for w in widths]),
                   "spherical": widths**2}[covariance_type]
    params = GaussianParameters.from_covariances([0.45, 0.35, 0.2], means, covariances,
                                                 covariance_type)
    rng = np.random.default_rng(14)
    labels = rng.choice(3, size=6000, p=params.weights)
    x = means[labels] + rng.normal(size=(6000, d)) * widths[labels, None]
    return params, x


@pytest.mark.parametrize("hard_assignment", [False, True])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_only_the_far_components_take_the_exact_kernel(covariance_type: str,
                                                       hard_assignment: bool) -> None:
    params, x = _near_and_far(covariance_type)
    split = SplitMixture.of(params)
    np.testing.assert_array_equal(split.near, [0, 1])
    np.testing.assert_array_equal(split.far, [2])
    weights = np.random.default_rng(2).uniform(0.0, 2.0, size=len(x))
    [mixed] = block_statistics(x, weights, [params], hard_assignment=hard_assignment,
                               count_assignments=True)
    [exact] = block_statistics(x, weights, [params], None, hard_assignment, True, exact=True)
    np.testing.assert_allclose(mixed.resp_sum, exact.resp_sum, rtol=1e-10)
    np.testing.assert_allclose(mixed.first, exact.first, rtol=1e-8, atol=1e-9)
    # The far component's scatter is ~1e-6 per row: exact to 1e-10 of itself, which the
    # packed expansion (error ~ε·r ≈ 5e-9 of the near terms) could not give.
    np.testing.assert_allclose(mixed.second[2], exact.second[2], rtol=1e-10)
    np.testing.assert_allclose(mixed.second[:2], exact.second[:2], rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(mixed.assigned, exact.assigned)
    assert mixed.log_likelihood == pytest.approx(exact.log_likelihood, rel=1e-11)
    log_likelihood, resp, best = e_step(x, params)
    exact_ll, exact_log_resp = log_responsibilities(x, params)
    # The packed near components: ~ε·r absolute (r ≤ 1e6), as MAX_ORIGIN_DISTANCE2 allows.
    np.testing.assert_allclose(log_likelihood, exact_ll, rtol=0, atol=1e-9)
    np.testing.assert_allclose(resp, np.exp(exact_log_resp), atol=1e-9)
    np.testing.assert_array_equal(best, np.argmax(exact_log_resp, axis=1))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_entropy_of_the_responsibilities_matches_scipy_on_every_path(covariance_type: str
                                                                     ) -> None:
    from scipy.special import logsumexp

    def reference(params: GaussianParameters, x: np.ndarray, w: np.ndarray) -> float:
        log_joint = np.column_stack([
            np.log(params.weights[k]) + multivariate_normal(
                params.means[k], dense_covariances(params)[k]).logpdf(x)
            for k in range(params.n_components)])
        log_resp = log_joint - logsumexp(log_joint, axis=1, keepdims=True)
        return float(w @ -(np.exp(log_resp) * log_resp).sum(axis=1))

    rng = np.random.default_rng(21)
    packed_params = random_parameters(covariance_type, k=3, d=4, seed=4)
    x = rng.normal(size=(3000, 4)) * 3
    split_params, split_x = _near_and_far(covariance_type)
    for params, rows in ((packed_params, x), (split_params, split_x)):
        w = rng.uniform(0.0, 2.0, size=len(rows))
        expected = reference(params, rows, w)
        [ours] = block_statistics(rows, w, [params], count_assignments=True)
        [exact] = block_statistics(rows, w, [params], None, False, True, exact=True)
        assert ours.entropy == pytest.approx(expected, rel=1e-8)
        assert exact.entropy == pytest.approx(expected, rel=1e-8)
        # Split into parts and merged: the same total; EM passes leave it out.
        halves = [block_statistics(rows[s], w[s], [params], count_assignments=True)[0]
                  for s in (slice(0, 1000), slice(1000, None))]
        assert halves[0].merge(halves[1]).entropy == pytest.approx(expected, rel=1e-8)
        assert block_statistics(rows, w, [params])[0].entropy is None
    [hard] = block_statistics(x, None, [packed_params], hard_assignment=True,
                              count_assignments=True)
    assert hard.entropy == 0.0


TINY = np.finfo(np.float64).tiny


def _case() -> tuple[np.ndarray, GaussianParameters, np.ndarray]:
    # Two unit components 38 apart: rows near one lie 720-ish nats from the other, where
    # exp gives subnormal numbers (the range -745 < v < -708).
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0.0, 1.0, 4000), rng.normal(38.0, 1.0, 4000)])[:, None]
    params = GaussianParameters.from_covariances([0.5, 0.5], [[0.0], [38.0]],
                                                 [[[1.0]], [[1.0]]], "full")
    # The unflushed reference, from scipy's densities and numpy's plain exp.
    weighted = np.log(0.5) + np.stack([norm.logpdf(x[:, 0], 0.0, 1.0),
                                       norm.logpdf(x[:, 0], 38.0, 1.0)], axis=1)
    resp = np.exp(weighted - logsumexp(weighted, axis=1)[:, None])
    return x, params, resp


def test_the_case_has_subnormal_responsibilities() -> None:
    _, _, resp = _case()
    subnormal = np.count_nonzero((resp > 0) & (resp < TINY))
    assert subnormal > 100  # otherwise the tests below would prove nothing


@pytest.mark.parametrize("path", ["packed", "exact"])
def test_flushed_statistics_equal_the_unflushed_ones(path: str) -> None:
    x, params, resp = _case()
    center = np.zeros(1)
    assert SplitMixture.of(params).far.size == 0  # the packed path serves both components
    [stats] = block_statistics(x, None, [params], center, exact=path == "exact")
    shift = params.means
    np.testing.assert_allclose(stats.resp_sum, resp.sum(axis=0), rtol=1e-12, atol=1e-300)
    first = np.stack([resp[:, k] @ (x - shift[k]) for k in range(2)])
    np.testing.assert_allclose(stats.first, first, rtol=1e-9, atol=1e-300)
    second = np.stack([((x - shift[k]) * resp[:, k : k + 1]).T @ (x - shift[k])
                       for k in range(2)])
    np.testing.assert_allclose(stats.second, second, rtol=1e-9, atol=1e-300)


def test_scored_responsibilities_have_no_subnormals_and_equal_numpy_elsewhere() -> None:
    x, params, resp = _case()
    _, scored, _ = e_step(x, params)
    assert not np.any((scored > 0) & (scored < TINY))
    kept = resp >= np.exp(flush_cut(2)) * 1.01  # a margin for the packed path's rounding
    np.testing.assert_allclose(scored[kept], resp[kept], rtol=1e-9)
    assert np.all(scored[resp < TINY] == 0.0)
    assert np.all(scored[~kept] < 2.2 * 2 * TINY)  # what was flushed was that small


def test_exp_flushed_matches_exp_on_normal_results_and_keeps_nan() -> None:
    values = np.array([0.0, -1.0, -700.0, -707.0, -708.0, -709.0, -730.0, -745.5, -800.0,
                       -np.inf, np.nan])
    for n_terms in (1, 16):
        out = values.copy()
        exp_flushed_in_place(out, n_terms)
        kept = values >= flush_cut(n_terms)
        np.testing.assert_array_equal(out[kept], np.exp(values[kept]))
        assert np.all(out[~kept & ~np.isnan(values)] == 0.0) and np.isnan(out[-1])
        # what is kept stays normal after division by a sum of up to n_terms
        assert np.all(out[kept] / n_terms >= TINY)
    # a large array takes the masked path: same results
    big = np.repeat(values[:-1], 1000)
    expected = np.where(big >= flush_cut(1), np.exp(big), 0.0)
    exp_flushed_in_place(big)
    np.testing.assert_array_equal(big, expected)


def test_flush_refuses_a_strided_array_it_would_only_copy() -> None:
    values = -np.arange(12.0).reshape(3, 4)
    transposed = values.T.copy().T  # F-contiguous: flushed in place like a C array
    exp_flushed_in_place(transposed)
    np.testing.assert_array_equal(transposed, np.exp(values))
    with pytest.raises(ValueError, match="contiguous"):
        exp_flushed_in_place(values[:, ::2])
