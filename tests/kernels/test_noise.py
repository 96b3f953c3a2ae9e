"""The uniform noise component (Banfield & Raftery 1993): the kernels and the EM loop against an
independent EM written row by row here (numpy/scipy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import logsumexp

from spark_gmm.fit.em import EMRun, run_em
from spark_gmm.kernels import (
    COVARIANCE_TYPES,
    GaussianParameters,
    block_statistics,
    e_step,
    n_free_parameters,
)
from tests.helpers import dense_covariances, make_mixture, noise_reference_em

REG = 1e-6


def _rows(seed: int = 0, n_background: int = 60) -> tuple[np.ndarray, np.ndarray]:
    x, _, _, _ = make_mixture(n=400, seed=seed, n_features=3, k=3)
    rng = np.random.default_rng(seed + 1)
    low, high = x.min(axis=0) - 2.0, x.max(axis=0) + 2.0
    background = rng.uniform(low, high, size=(n_background, 3))
    return np.vstack([x, background]), rng.uniform(0.5, 2.0, size=400 + n_background)


def _start(x: np.ndarray, covariance_type: str, noise_weight: float, log_volume: float
           ) -> GaussianParameters:
    rng = np.random.default_rng(3)
    k = 3
    means = x[rng.choice(400, size=k, replace=False)]
    variances = x.var(axis=0)
    covariances = {"full": np.stack([np.diag(variances)] * k), "tied": np.diag(variances),
                   "diag": np.stack([variances] * k),
                   "spherical": np.full(k, variances.mean())}[covariance_type]
    weights = np.array([0.2, 0.3, 0.5]) * (1 - noise_weight)
    return GaussianParameters.from_covariances(weights, means, covariances, covariance_type,
                                               noise_weight, log_volume)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("exact", [False, True])
def test_em_with_noise_equals_row_by_row_reference(covariance_type: str, exact: bool) -> None:
    x, w = _rows()
    log_volume = float(np.log(np.prod(x.max(axis=0) - x.min(axis=0))))
    start = _start(x, covariance_type, 0.1, log_volume)
    iterations = 6
    center = x.mean(axis=0)
    run = EMRun(start.shifted(-center))
    run_em([run], lambda models: block_statistics(x, w, models, center, exact=exact),
           REG, iterations, 0.0)
    # The last iteration's log-likelihood is that of the parameters before its M-step.
    ref = noise_reference_em(x, w, start, iterations, REG)
    fitted = run.params.shifted(center)
    assert run.n_iter == iterations
    assert fitted.has_noise and fitted.noise_log_volume == log_volume
    np.testing.assert_allclose(fitted.weights, ref[0], rtol=0, atol=1e-9)
    assert abs(fitted.noise_weight - ref[1]) < 1e-9
    assert abs(fitted.weights.sum() + fitted.noise_weight - 1.0) < 1e-12
    np.testing.assert_allclose(fitted.means, ref[2], rtol=0, atol=1e-9)
    np.testing.assert_allclose(dense_covariances(fitted), ref[3], rtol=0, atol=1e-9)
    assert abs(run.history[-1] - ref[4] / w.sum()) < 1e-9
    # The noise took the background: its weight is near the background's share of weight.
    assert 0.05 < fitted.noise_weight < 0.3


def test_e_step_with_noise_gives_the_noise_column_last_and_its_label_k() -> None:
    x, _ = _rows()
    log_volume = float(np.log(np.prod(x.max(axis=0) - x.min(axis=0))))
    params = _start(x, "full", 0.2, log_volume)
    log_p = np.column_stack(
        [np.log(params.weights[j]) + sps.multivariate_normal(
            params.means[j], params.covariances[j]).logpdf(x) for j in range(3)]
        + [np.full(x.shape[0], np.log(0.2) - log_volume)])
    expected_ll = logsumexp(log_p, axis=1)
    for exact in (False, True):
        log_likelihood, resp, best = e_step(x, params, exact=exact)
        assert resp.shape == (x.shape[0], 4)
        np.testing.assert_allclose(log_likelihood, expected_ll, rtol=0, atol=1e-9)
        np.testing.assert_allclose(resp, np.exp(log_p - expected_ll[:, None]), rtol=0,
                                   atol=1e-9)
        np.testing.assert_array_equal(best, np.argmax(log_p, axis=1))
    assert (best == 3).any() and (best < 3).any()


def test_statistics_with_noise_merge_over_any_split_and_count_noise_rows() -> None:
    x, w = _rows()
    params = _start(x, "diag", 0.1, float(np.log(np.prod(np.ptp(x, axis=0)))))
    [whole] = block_statistics(x, w, [params], count_assignments=True)
    parts = [block_statistics(x[s], w[s], [params], count_assignments=True)[0]
             for s in (slice(0, 100), slice(100, 333), slice(333, None))]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert whole.noise_resp_sum is not None and whole.assigned is not None
    assert abs(merged.noise_resp_sum - whole.noise_resp_sum) < 1e-9
    assert whole.assigned.shape == (4,) and merged.assigned.tolist() == whole.assigned.tolist()
    # Σ over the Gaussians and the noise of Σ w γ is Σ w.
    assert abs(whole.resp_sum.sum() + whole.noise_resp_sum - w.sum()) < 1e-9
    [plain] = block_statistics(x, w, [params.without_noise()], count_assignments=True)
    with pytest.raises(ValueError, match="noise"):
        whole.merge(plain)


def test_noise_weight_validation_and_free_parameters() -> None:
    means, cov = np.zeros((2, 2)), np.ones((2, 2))
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianParameters.from_covariances([0.5, 0.5], means, cov, "diag", 0.1, 0.0)
    with pytest.raises(ValueError, match="finite"):
        GaussianParameters.from_covariances([0.45, 0.45], means, cov, "diag", 0.1, np.inf)
    params = GaussianParameters.from_covariances([0.5, 0.5], means, cov, "diag")
    noisy = params.with_noise(0.1, 2.0)
    np.testing.assert_allclose(noisy.weights, [0.45, 0.45], rtol=0, atol=1e-15)
    assert n_free_parameters("diag", 2, 2) + 1 == n_free_parameters("diag", 2, 2, noise=True)
    assert n_free_parameters("diag", 2, 2, noise=True) == 2 * 2 + 2 * 2 + 1 + 1


def test_a_checkpoint_keeps_the_noise_component(tmp_path) -> None:
    from spark_gmm.fit.checkpoint import read_checkpoint, write_checkpoint

    x, _ = _rows()
    params = _start(x, "spherical", 0.15, 3.25)
    path = str(tmp_path / "em.json")
    write_checkpoint(path, {"k": 3}, np.zeros(3), [EMRun(params, [-1.5])])
    _, [run] = read_checkpoint(path, {"k": 3})
    assert run.params.noise_weight == params.noise_weight
    assert run.params.noise_log_volume == 3.25
    np.testing.assert_array_equal(run.params.weights, params.weights)
