"""k-means++ seeding and Lloyd refinement on an in-memory sample (for ``initMode=k-means++``)."""

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


def kmeans_plus_plus(x: FloatArray, k: int, rng: np.random.Generator) -> FloatArray:
    """Arthur & Vassilvitskii's D² seeding: ``k`` centres drawn from the rows of ``x``.

    Parameters
    ----------
    x : ndarray of shape (n, D)
    k : int
    rng : numpy Generator (seeded by the caller)

    Returns
    -------
    ndarray of shape (k, D)
    """
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(x.shape[0])]
    closest = squared_distances(x, centers[:1])[:, 0]
    for i in range(1, k):
        total = closest.sum()
        index = rng.choice(x.shape[0], p=closest / total) if total > 0 else rng.integers(
            x.shape[0])
        centers[i] = x[index]
        closest = np.minimum(closest, squared_distances(x, centers[i : i + 1])[:, 0])
    return centers


def lloyd(x: FloatArray, centers: FloatArray, max_iter: int = 100) -> FloatArray:
    """Lloyd iterations until the assignment stops changing; empty clusters keep their centre.

    Returns
    -------
    ndarray of shape (k, D)
    """
    centers = centers.copy()
    labels = None
    for _ in range(max_iter):
        new_labels = nearest_centre(x, centers)
        if labels is not None and np.array_equal(labels, new_labels):
            break
        labels = new_labels
        for j in range(centers.shape[0]):
            members = x[labels == j]
            if members.shape[0]:
                centers[j] = members.mean(axis=0)
    return centers
