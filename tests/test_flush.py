"""Responsibilities below the smallest normal double are flushed to 0, and nothing else moves."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from spark_gmm.kernels import GaussianParameters, block_statistics, e_step
from spark_gmm.kernels.flush import exp_flushed_in_place, flush_cut
from spark_gmm.kernels.split import SplitMixture

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
