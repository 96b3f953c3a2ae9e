"""The initialisation's kernels against independent references: scikit-learn's k-means,
numpy's moments, brute-force distances, and the sampling's invariance to partitioning."""

from __future__ import annotations

from functools import reduce

import numpy as np
import pytest
from sklearn.cluster import KMeans

from spark_gmm.kernels import FeatureMoments
from spark_gmm.kernels.kmeans import ClusterSums, kmeans_plus_plus, lloyd, nearest_one_hot
from spark_gmm.kernels.sampling import (
    Candidates,
    KeyedRows,
    min_squared_distances,
    row_keys,
)
from tests.helpers import make_mixture


def test_lloyd_equals_scikit_learns_kmeans_from_the_same_centres() -> None:
    x, *_ = make_mixture(n=1500, seed=5, k=4, n_features=3)
    start = x[np.random.default_rng(3).choice(len(x), 4, replace=False)]
    reference = KMeans(4, init=start, n_init=1, algorithm="lloyd", tol=0.0,
                       max_iter=300).fit(x)
    ours = lloyd(x, start, max_iter=300)
    order = [int(np.argmin(np.linalg.norm(reference.cluster_centers_ - c, axis=1)))
             for c in ours]
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_allclose(ours, reference.cluster_centers_[order], rtol=1e-10, atol=1e-10)


def test_kmeans_plus_plus_seeds_each_far_cluster_and_beats_random_rows() -> None:
    # Four tight clusters 100 apart: D² seeding puts one centre in each almost always.
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    x = np.concatenate([c + rng.normal(size=(250, 2)) for c in centres])
    hits = 0
    for seed in range(100):
        chosen = kmeans_plus_plus(x, 4, np.random.default_rng(seed))
        assert all(any(np.array_equal(c, row) for row in x) for c in chosen)  # data rows
        nearest = {int(np.argmin(np.linalg.norm(centres - c, axis=1))) for c in chosen}
        hits += nearest == {0, 1, 2, 3}
    # By chance alone (uniform rows) all four clusters are hit with probability 4!/4⁴ ≈ 9 %.
    assert hits >= 95


def test_feature_moments_merge_equals_the_whole_for_any_split() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(1000, 3)) * [1.0, 1e-3, 50.0] + [1e6, -3.0, 0.0]
    w = rng.uniform(0.0, 2.0, size=len(x))
    w[:100] = 0.0  # a split with no weight at all
    whole = FeatureMoments.of(x, w)
    np.testing.assert_allclose(whole.mean, np.average(x, axis=0, weights=w), rtol=1e-14)
    expected_variance = np.average((x - whole.mean) ** 2, axis=0, weights=w)
    np.testing.assert_allclose(whole.variance, expected_variance, rtol=1e-9)
    for cuts in ([100], [1, 2, 999], [300, 301, 700]):
        parts = [FeatureMoments.of(a, b) for a, b in zip(np.split(x, cuts), np.split(w, cuts))]
        left = reduce(FeatureMoments.merge, parts)
        right = reduce(lambda a, b: b.merge(a), reversed(parts))
        for merged in (left, right):
            assert merged.weight == pytest.approx(whole.weight, rel=1e-14)
            np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-14)
            np.testing.assert_allclose(merged.variance, whole.variance, rtol=1e-9)


def _sample_of(blocks: list[np.ndarray], size: int, seed: int, distinct: bool) -> np.ndarray:
    # What the pass does: each block keeps its smallest keys, the driver merges them.
    return reduce(KeyedRows.merge, [KeyedRows.of(b, seed, size, distinct) for b in blocks]).rows


@pytest.mark.parametrize("distinct", [True, False])
def test_sample_does_not_depend_on_the_partitioning(distinct: bool) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 4))
    x[1000:1500] = x[0]  # 500 copies of one row
    whole = _sample_of([x], 50, seed=11, distinct=distinct)
    assert whole.shape == (50, 4)
    for partitions in (3, 17):
        shuffled = x[rng.permutation(len(x))]
        split = _sample_of(np.array_split(shuffled, partitions), 50, seed=11,
                           distinct=distinct)
        np.testing.assert_array_equal(split, whole)
    unique_rows = np.unique(whole, axis=0).shape[0]
    if distinct:
        assert unique_rows == 50
    # Another seed picks other rows; the keys are a pure function of (row, seed).
    assert not np.array_equal(_sample_of([x], 50, seed=12, distinct=distinct), whole)
    np.testing.assert_array_equal(row_keys(x[:5], 11), row_keys(x[:5], 11))


def test_smallest_keys_are_those_of_a_full_sort() -> None:
    # The selection partitions the keys instead of sorting them all; a full sort is the
    # reference, for every size from none to all.
    x = np.random.default_rng(8).normal(size=(500, 3))
    keys = row_keys(x, 5)
    for size in (0, 1, 2, 37, 499, 500, 800):
        chosen = KeyedRows.of(x, 5, size, distinct=False)
        np.testing.assert_array_equal(chosen.keys.view(np.uint64), np.sort(keys)[:size])
        np.testing.assert_array_equal(chosen.rows, x[np.argsort(keys)[:size]])


def test_sample_is_close_to_uniform_over_rows() -> None:
    # Each row's key is uniform: over many seeds each of 10 rows leads about equally often.
    x = np.arange(10.0)[:, None]
    first = [int(_sample_of([x], 1, seed=s, distinct=True)[0, 0]) for s in range(3000)]
    counts = np.bincount(first, minlength=10)
    assert counts.min() > 240 and counts.max() < 360  # 300 expected, ±3.5 standard deviations


def test_min_squared_distances_and_cluster_sums_match_brute_force() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(20_000, 3)) * 4.0
    w = rng.uniform(0.0, 2.0, size=len(x))
    centres = np.vstack([x[:30], x[:1]])  # a duplicated centre: its copy must stay empty
    d2 = ((x[:, None, :] - centres[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(min_squared_distances(x, centres), d2.min(axis=1),
                               rtol=1e-9, atol=1e-9)
    nearest = d2.argmin(axis=1)  # ties to the lowest index, like np.argmin
    expected_counts = np.bincount(nearest, weights=w, minlength=len(centres))
    expected_sums = np.stack([w[nearest == j] @ x[nearest == j] for j in range(len(centres))])
    whole = ClusterSums.of(x, w, centres)
    np.testing.assert_allclose(whole.counts, expected_counts, rtol=1e-12)
    np.testing.assert_allclose(whole.sums, expected_sums, rtol=1e-9, atol=1e-9)
    assert whole.counts[-1] == 0.0
    parts = [ClusterSums.of(a, b, centres) for a, b in zip(np.array_split(x, 7),
                                                            np.array_split(w, 7))]
    merged = reduce(ClusterSums.merge, parts[::-1])
    np.testing.assert_allclose(merged.counts, whole.counts, rtol=1e-12)
    np.testing.assert_allclose(merged.sums, whole.sums, rtol=1e-9, atol=1e-9)
    moved = whole.centres(centres)
    np.testing.assert_allclose(moved[0], expected_sums[0] / expected_counts[0], rtol=1e-12)
    np.testing.assert_array_equal(moved[-1], centres[-1])  # empty: keeps its centre


def test_nearest_one_hot_breaks_ties_like_argmin() -> None:
    scores = np.array([[1.0, 2.0, 0.5, 3.0], [1.0, 0.0, 0.5, 3.0], [0.0, 0.0, 0.5, 3.0]])
    expected = np.zeros_like(scores)
    expected[scores.argmin(axis=0), np.arange(4)] = 1.0
    np.testing.assert_array_equal(nearest_one_hot(scores), expected)
    random_scores = np.random.default_rng(3).integers(0, 3, size=(5, 1000)).astype(float)
    hot = nearest_one_hot(random_scores)
    np.testing.assert_array_equal(hot.argmax(axis=0), random_scores.argmin(axis=0))
    np.testing.assert_array_equal(hot.sum(axis=0), 1.0)


def test_kmeans_parallel_candidates_follow_the_d2_distribution_whatever_the_split() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20_000, 2))
    centres = np.array([[0.0, 0.0]])
    d2 = (x**2).sum(axis=1)
    whole = Candidates.of(x, x, None, centres, seed=3, oversampling=40.0)
    np.testing.assert_allclose(whole.cost, d2.sum(), rtol=1e-12)
    chosen = whole.chosen()
    # Split into uneven parts and merged in another order: the very same rows are chosen.
    parts = [Candidates.of(b, b, None, centres, 3, 40.0) for b in np.array_split(x, 7)]
    merged = reduce(Candidates.merge, parts[::-1])
    assert sorted(map(tuple, merged.chosen())) == sorted(map(tuple, chosen))
    # About ℓ rows, each with probability ℓ·d²/φ: far rows far more often than near ones.
    assert 20 <= len(chosen) <= 60
    probability = 40.0 * d2 / d2.sum()
    expected_far = probability[d2 > 4].sum()
    assert abs(np.count_nonzero((chosen**2).sum(axis=1) > 4) - expected_far) < 4 * np.sqrt(
        expected_far)
    # Over many seeds each row's frequency is its probability (a far row and the rest).
    far = int(np.argmax(d2))
    hits = sum(any(np.array_equal(r, x[far]) for r in
                   Candidates.of(x, x, None, centres, s, 40.0).chosen()) for s in range(300))
    assert abs(hits / 300 - min(1.0, probability[far])) < 0.1
