"""Drawing rows from a mixture: the model as a generator of data."""

from __future__ import annotations

import numpy as np

from .covariance import FloatArray
from .parameters import GaussianParameters


def noise_box(lower: FloatArray, upper: FloatArray, log_volume: float
              ) -> tuple[FloatArray, FloatArray]:
    """The box of volume V = exp(``log_volume``) with the centre and the proportions of
    [``lower``, ``upper``] (the training rows' bounding box): where a noise component's rows
    are drawn. With V the bounding box's own volume, that box."""
    sides = upper - lower
    scale = np.exp((log_volume - float(np.sum(np.log(sides)))) / sides.size)
    centre, half = (lower + upper) / 2, sides * scale / 2
    return centre - half, centre + half


def sample_mixture(params: GaussianParameters, n: int, rng: np.random.Generator,
                   box: tuple[FloatArray, FloatArray] | None = None
                   ) -> tuple[FloatArray, np.ndarray]:
    """``n`` rows drawn from the mixture, grouped by component as scikit-learn's
    ``GaussianMixture.sample`` returns them.

    The count of each component is multinomial(n, π); its rows are μ_k + L_k z with
    Σ_k = L_k L_kᵀ (Cholesky) and z standard normal. A noise component's rows (its count
    drawn with the others', π_0 last) are uniform in ``box`` and come last, label −1.

    Parameters
    ----------
    params : GaussianParameters
    n : int
        Rows to draw, ≥ 0.
    rng : numpy Generator
    box : (ndarray of shape (D,), ndarray of shape (D,)) or None
        The noise component's box (:func:`noise_box`); needed when it has one.

    Returns
    -------
    x : ndarray of shape (n, D)
    labels : ndarray of shape (n,), int64
        The component each row was drawn from (−1: the noise).
    """
    if n < 0:
        raise ValueError(f"cannot draw {n} rows; n must be 0 or more")
    if params.has_noise:
        if box is None:
            raise ValueError("drawing from a noise component needs its box")
        weights = np.append(params.weights, params.noise_weight)
        counts = rng.multinomial(n, weights / weights.sum())
        x, labels = _gaussian_rows(params, counts[:-1], rng)
        noise = rng.uniform(box[0], box[1], size=(counts[-1], params.n_features))
        return (np.vstack([x, noise]),
                np.concatenate([labels, np.full(counts[-1], -1, dtype=np.int64)]))
    return _gaussian_rows(params, rng.multinomial(n, params.weights), rng)


def _gaussian_rows(params: GaussianParameters, counts: np.ndarray, rng: np.random.Generator
                   ) -> tuple[FloatArray, np.ndarray]:
    # counts[k] rows of each Gaussian, in component order.
    k, d = params.n_components, params.n_features
    n = int(counts.sum())
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
