"""Rows with missing features: the marginal E-step and the conditional expected statistics
against a row-by-row reference (scipy on each row's observed features, explicit conditional
means and covariances; tests/helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm.kernels import COVARIANCE_TYPES, block_statistics, e_step
from spark_gmm.kernels.marginal import incomplete_rows, missing_groups
from tests.helpers import missing_reference_estep, random_parameters, with_missing


def _rows(d: int = 5, n: int = 240, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return with_missing(rng.normal(size=(n, d)) * 3 + 40.0, share=0.4, most=3, seed=seed)


def test_groups_cover_every_incomplete_row_once() -> None:
    x = _rows()
    mask = incomplete_rows(x)
    assert mask is not None and mask.sum() == np.isnan(x).any(axis=1).sum() > 50
    seen = np.zeros(x.shape[0], dtype=int)
    groups = missing_groups(x)
    assert [g.missing.shape[1] for g in groups] == [1, 2, 3]
    for group in groups:
        expected = np.zeros((len(group.rows), x.shape[1]), dtype=bool)
        np.put_along_axis(expected, group.missing, True, axis=1)
        np.testing.assert_array_equal(np.isnan(x[group.rows]), expected)
        np.testing.assert_array_equal(group.patterns[group.pattern], group.missing)
        assert len({tuple(p) for p in group.patterns}) == len(group.patterns)
        np.testing.assert_array_equal(group.starts, np.searchsorted(
            group.pattern, np.arange(len(group.patterns))))
        seen[group.rows] += 1
    np.testing.assert_array_equal(seen, mask.astype(int))
    assert incomplete_rows(np.nan_to_num(x)) is None


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_statistics_equal_row_by_row_reference(covariance_type: str) -> None:
    x = _rows()
    params = random_parameters(covariance_type, k=3, d=5, seed=7).shifted(np.full(5, 40.0))
    weights = np.random.default_rng(1).uniform(0.2, 2.0, size=x.shape[0])
    center = np.nanmean(x, axis=0)
    [ours] = block_statistics(x, weights, [params.shifted(-center)], center,
                              count_assignments=True)
    log_likelihood, resp, completed, conditional = missing_reference_estep(x, params)
    wr = resp * weights[:, None]
    diff = completed - params.means[None]
    first = np.einsum("nk,nkd->kd", wr, diff)
    second = (np.einsum("nk,nkd,nke->kde", wr, diff, diff)
              + np.einsum("nk,nkde->kde", wr, conditional))
    if ours.second.ndim == 2:  # diag, spherical: the diagonals
        second = np.diagonal(second, axis1=1, axis2=2)
    np.testing.assert_allclose(ours.resp_sum, wr.sum(axis=0), rtol=1e-9)
    np.testing.assert_allclose(ours.first, first, rtol=1e-9, atol=1e-9 * np.abs(first).max())
    np.testing.assert_allclose(ours.second, second, rtol=1e-9,
                               atol=1e-9 * np.abs(second).max())
    assert ours.log_likelihood == pytest.approx(weights @ log_likelihood, rel=1e-12)
    assert ours.weight_sum == pytest.approx(weights.sum(), rel=1e-14)
    assert ours.row_count == x.shape[0]
    np.testing.assert_array_equal(ours.assigned, np.bincount(resp.argmax(1), minlength=3))
    entropy = -(resp * np.log(resp)).sum(axis=1)
    assert ours.entropy == pytest.approx(weights @ entropy, rel=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_and_imputation_equal_reference(covariance_type: str) -> None:
    from spark_gmm.kernels.marginal import marginal_e_step

    x = _rows(seed=4)
    params = random_parameters(covariance_type, k=3, d=5, seed=2).shifted(np.full(5, 40.0))
    log_likelihood, resp, completed, _ = missing_reference_estep(x, params)
    ours_ll, ours_resp, best = e_step(x, params)
    np.testing.assert_allclose(ours_ll, log_likelihood, rtol=1e-11)
    np.testing.assert_allclose(ours_resp, resp, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(best, resp.argmax(axis=1))
    rows = np.isnan(x).any(axis=1)
    _, _, imputed = marginal_e_step(x[rows], params)
    expected = np.einsum("nk,nkd->nd", resp[rows], completed[rows])
    np.testing.assert_allclose(imputed, expected, rtol=1e-9)
    assert not np.isnan(imputed).any()
    np.testing.assert_array_equal(imputed[~np.isnan(x[rows])], x[rows][~np.isnan(x[rows])])


def test_hard_assignment_imputes_the_center() -> None:
    x = _rows()
    params = random_parameters("full", k=3, d=5, seed=7)
    center = np.nanmean(x, axis=0)
    filled = np.where(np.isnan(x), center, x)
    [ours] = block_statistics(x, None, [params], center, hard_assignment=True)
    [imputed] = block_statistics(filled, None, [params], center, hard_assignment=True)
    for name in ("resp_sum", "first", "second"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(imputed, name))


def test_complete_rows_unchanged_by_the_missing_path() -> None:
    # A block's complete rows give the same sums whether or not incomplete rows accompany them:
    # the statistics of the whole block are those of the two parts merged.
    x = _rows()
    params = random_parameters("diag", k=3, d=5, seed=7)
    center = np.nanmean(x, axis=0)
    model = params.shifted(-center)
    rows = np.isnan(x).any(axis=1)
    [whole] = block_statistics(x, None, [model], center)
    [complete] = block_statistics(x[~rows], None, [model], center)
    [incomplete] = block_statistics(x[rows], None, [model], center)
    merged = complete.merge(incomplete)
    for name in ("resp_sum", "first", "second"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(merged, name))
    assert whole.log_likelihood == merged.log_likelihood


def test_layout_of_a_read_only_block_is_kept_while_it_lives() -> None:
    # Stored blocks are read-only and read again every pass: their layout (where the rows
    # with NaN are, grouped) is found once; the statistics are those of a fresh layout.
    import gc

    from spark_gmm.kernels.marginal import _LAYOUTS, block_layout

    x = _rows()
    params = random_parameters("full", k=3, d=5, seed=7)
    center = np.nanmean(x, axis=0)
    model = params.shifted(-center)
    [fresh] = block_statistics(x, None, [model], center)
    assert block_layout(x) is not block_layout(x)  # a writable block may change
    stored = x.copy()
    stored.flags.writeable = False
    layout = block_layout(stored)
    assert layout is not None and block_layout(stored) is layout
    for _ in range(2):
        [kept] = block_statistics(stored, None, [model], center)
        for name in ("resp_sum", "first", "second"):
            np.testing.assert_array_equal(getattr(kept, name), getattr(fresh, name))
        assert kept.log_likelihood == fresh.log_likelihood
    key = id(stored)
    del stored
    gc.collect()
    assert key not in _LAYOUTS
