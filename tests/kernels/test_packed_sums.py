"""Γ Φᵀ over a block: mostly-zero responsibilities take the set-aside rows, the rest the GEMM."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from spark_gmm.kernels import GaussianParameters, block_statistics, packed
from spark_gmm.kernels.packed import PackedSums


def _features(x: np.ndarray) -> np.ndarray:
    # φ(x) = [x_i x_j (i ≤ j, row-major), x, 1] for each row, written out term by term.
    n, d = x.shape
    columns = [x[:, i] * x[:, j] for i in range(d) for j in range(i, d)]
    return np.stack(columns + [x[:, i] for i in range(d)] + [np.ones(n)])


def test_set_aside_chunks_and_gemm_chunks_sum_to_gamma_phi_transposed(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    n, d, k = 900, 3, 4
    x = rng.normal(2.0, 3.0, (n, d))
    center = np.array([1.0, -0.5, 2.0])
    resp = np.zeros((k, n))
    resp[rng.integers(k, size=n), np.arange(n)] = rng.uniform(0.2, 3.0, n)  # one per row
    resp[:, 600:] = rng.uniform(0.0, 1.0, (k, 300))  # a dense last chunk
    phi = _features(x - center)
    monkeypatch.setattr(packed, "_WINDOW_ROWS", 400)  # the window fills and folds mid-block
    sums = PackedSums(k, x, center, "full")
    set_aside = []
    for rows in (slice(0, 250), slice(250, 600), slice(600, 900)):
        before = sums.window_used
        sums.add(resp[:, rows], phi[:, rows], rows)
        set_aside.append(sums.window_used != before)
    # chunk 1 set aside; chunk 2 folds it and is set aside in turn; chunk 3 takes the GEMM
    assert set_aside == [True, True, False]
    assert sums.window_used == 350
    np.testing.assert_allclose(sums.total(), resp @ phi.T, rtol=1e-12)
    assert sums.window_used == 0


def _separated(n_per: int) -> tuple[np.ndarray, GaussianParameters]:
    rng = np.random.default_rng(5)
    means = np.array([[0.0, 0.0, 0.0], [60.0, 0.0, 0.0], [0.0, 60.0, 0.0], [0.0, 0.0, 60.0]])
    covariances = np.stack([np.eye(3) * s for s in (1.0, 2.0, 0.5, 1.5)])
    x = np.concatenate([rng.multivariate_normal(m, c, n_per)
                        for m, c in zip(means, covariances)])
    # A fifth of a unit off, so that the moments about the means are not ~0.
    params = GaussianParameters.from_covariances(np.full(4, 0.25), means + 0.2, covariances,
                                                 "full")
    return x, params


@pytest.mark.parametrize("weighted", [False, True])
def test_block_statistics_of_separated_clusters_equal_scipy(weighted: bool,
                                                            monkeypatch) -> None:
    x, params = _separated(3000)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, len(x)) if weighted else None
    totals_seen = []
    real_total = PackedSums.total

    def spy(self, *args, **kwargs):
        totals_seen.append(self.window_used > 0)
        return real_total(self, *args, **kwargs)

    monkeypatch.setattr(PackedSums, "total", spy)
    [stats] = block_statistics(x, weights, [params])
    assert totals_seen == [True]  # the set-aside rows served this block

    log_dens = np.log(0.25) + np.stack([
        multivariate_normal(m, c).logpdf(x) for m, c in zip(params.means, params.covariances)],
        axis=1)
    resp = np.exp(log_dens - logsumexp(log_dens, axis=1)[:, None])
    assert np.mean(resp < np.finfo(float).tiny) > 0.7  # mostly exact zeros once flushed
    w = np.ones(len(x)) if weights is None else weights
    wr = resp * w[:, None]
    np.testing.assert_allclose(stats.resp_sum, wr.sum(axis=0), rtol=1e-12)
    for j, mean in enumerate(params.means):
        dev = x - mean
        np.testing.assert_allclose(stats.first[j], wr[:, j] @ dev, rtol=1e-9)
        np.testing.assert_allclose(stats.second[j], (dev * wr[:, j : j + 1]).T @ dev,
                                   rtol=1e-9)
    np.testing.assert_allclose(stats.log_likelihood,
                               w @ logsumexp(log_dens, axis=1), rtol=1e-12)


def test_set_aside_and_gemm_agree_on_separated_clusters(monkeypatch) -> None:
    x, params = _separated(2000)
    center = x.mean(axis=0)
    params = params.shifted(-center)  # in the coordinates the rows are centred to
    [aside] = block_statistics(x, None, [params], center)
    monkeypatch.setattr(packed, "_SPARSE_SHARE", 0.0)  # every chunk through the GEMM
    [gemm] = block_statistics(x, None, [params], center)
    # Both expand about the data mean, 40-odd units from these components: moments about the
    # means lose ~ε·r_k relative (packed.MAX_ORIGIN_DISTANCE2) whatever the summation order.
    np.testing.assert_allclose(aside.second, gemm.second, rtol=1e-9)
    np.testing.assert_allclose(aside.first, gemm.first, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(aside.resp_sum, gemm.resp_sum)
