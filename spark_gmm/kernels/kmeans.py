"""k-means++ seeding and Lloyd refinement in memory, optionally weighted: on a sample of the
rows (``initMode=k-means++``) or on the weighted candidates of k-means‖."""

from __future__ import annotations

import numpy as np

from .covariance import FloatArray


def squared_distances(x: FloatArray, centers: FloatArray) -> FloatArray:
    """‖x_n − c_k‖², shape (n, k), from one GEMM (clipped at 0 against rounding)."""
    d2 = (np.einsum("nd,nd->n", x, x)[:, None] - 2.0 * x @ centers.T
          + np.einsum("kd,kd->k", centers, centers))
    return np.maximum(d2, 0.0)


def nearest_centre(x: FloatArray, centers: FloatArray) -> np.ndarray:
    """Index of each row's nearest centre (Euclidean), shape (n,)."""
    return np.argmin(squared_distances(x, centers), axis=1)


def kmeans_plus_plus(x: FloatArray, k: int, rng: np.random.Generator,
                     weights: FloatArray | None = None) -> FloatArray:
    """Arthur & Vassilvitskii's D² seeding, greedy as scikit-learn's: ``k`` centres drawn
    from the rows of ``x``. The first is drawn in proportion to the weights; each next one
    is the best, by the weighted sum of squared distances it leaves, of 2 + ⌊ln k⌋ rows drawn
    in proportion to weight × squared distance to the nearest centre so far.

    Parameters
    ----------
    x : ndarray of shape (n, D)
    k : int
    rng : numpy Generator (seeded by the caller)
    weights : ndarray of shape (n,) or None
        Non-negative row weights; None means 1 each.

    Returns
    -------
    ndarray of shape (k, D)
    """
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    trials = 2 + int(np.log(k))
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[_draw(rng, w)]
    closest = squared_distances(x, centers[:1])[:, 0]
    for i in range(1, k):
        drawn = [_draw(rng, w * closest, fallback=w) for _ in range(trials)]
        left = np.minimum(closest[None, :], squared_distances(x[drawn], x))  # (trials, n)
        best = int(np.argmin(left @ w))
        centers[i] = x[drawn[best]]
        closest = left[best]
    return centers


def _draw(rng: np.random.Generator, p: FloatArray, fallback: FloatArray | None = None) -> int:
    total = p.sum()
    if total > 0:
        return int(rng.choice(p.shape[0], p=p / total))
    if fallback is not None and fallback.sum() > 0:  # every row is a centre already
        return _draw(rng, fallback)
    return int(rng.integers(p.shape[0]))


def lloyd(x: FloatArray, centers: FloatArray, max_iter: int = 100,
          weights: FloatArray | None = None) -> FloatArray:
    """Lloyd iterations until the assignment stops changing; empty clusters keep their centre.

    Returns
    -------
    ndarray of shape (k, D)
    """
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    centers = centers.copy()
    labels = None
    for _ in range(max_iter):
        new_labels = nearest_centre(x, centers)
        if labels is not None and np.array_equal(labels, new_labels):
            break
        labels = new_labels
        for j in range(centers.shape[0]):
            members = labels == j
            total = w[members].sum()
            if total > 0:
                centers[j] = w[members] @ x[members] / total
    return centers
