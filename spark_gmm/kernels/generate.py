"""Drawing rows from a mixture: the model as a generator of data."""

from __future__ import annotations

import numpy as np

from .covariance import FloatArray
from .parameters import GaussianParameters


def sample_mixture(params: GaussianParameters, n: int, rng: np.random.Generator
                   ) -> tuple[FloatArray, np.ndarray]:
    """``n`` rows drawn from the mixture, grouped by component as scikit-learn's
    ``GaussianMixture.sample`` returns them.

    The count of each component is multinomial(n, π); its rows are μ_k + L_k z with
    Σ_k = L_k L_kᵀ (Cholesky) and z standard normal.

    Parameters
    ----------
    params : GaussianParameters
    n : int
        Rows to draw, ≥ 0.
    rng : numpy Generator

    Returns
    -------
    x : ndarray of shape (n, D)
    labels : ndarray of shape (n,), int64
        The component each row was drawn from.
    """
    if n < 0:
        raise ValueError(f"cannot draw {n} rows; n must be 0 or more")
    k, d = params.n_components, params.n_features
    counts = rng.multinomial(n, params.weights)
    # L_k with Σ_k = L_k L_kᵀ: rows μ_k + L_k z are drawn from component k.
    factors = np.linalg.cholesky(params.covariance.dense(params.covariances, k, d))
    x = np.empty((n, d))
    start = 0
    for component, count in enumerate(counts):
        rows = slice(start, start + count)
        x[rows] = rng.standard_normal((count, d)) @ factors[component].T
        x[rows] += params.means[component]
        start += count
    return x, np.repeat(np.arange(k, dtype=np.int64), counts)
