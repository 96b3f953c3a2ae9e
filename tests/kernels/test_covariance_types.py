"""Each covariance type's layout operations against the same quantities written by hand."""

from __future__ import annotations

import numpy as np
import pytest

from spark_gmm.kernels import COVARIANCE_TYPES, GaussianParameters, covariance_of

K, D = 3, 4
RNG = np.random.default_rng(21)
_A = RNG.normal(size=(K, D, D))
FULL = _A @ _A.transpose(0, 2, 1) + np.eye(D)
COVARIANCES = {"full": FULL, "tied": FULL[0], "diag": RNG.uniform(0.5, 2.0, size=(K, D)),
               "spherical": RNG.uniform(0.5, 2.0, size=K)}
# The same covariances as K dense (D, D) matrices, built without the table.
DENSE = {"full": FULL, "tied": np.stack([FULL[0]] * K),
         "diag": np.stack([np.diag(v) for v in COVARIANCES["diag"]]),
         "spherical": np.stack([np.eye(D) * v for v in COVARIANCES["spherical"]])}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_layout_functions_match_the_dense_matrices(covariance_type: str) -> None:
    covariance = covariance_of(covariance_type)
    covariances, dense = COVARIANCES[covariance_type], DENSE[covariance_type]
    assert covariance.shape(K, D) == covariances.shape
    np.testing.assert_array_equal(covariance.dense(covariances, K, D), dense)
    rows = covariance.rows(covariances, K)
    assert rows.shape[0] == K
    np.testing.assert_array_equal(covariance.from_rows(rows, K, D), covariances)
    # Scaling feature j by s_j scales covariance (i, j) by s_i s_j.
    scale = np.array([1.0, 10.0, 0.1, 3.0])
    rescaled = covariance.rescaled(covariances, scale)
    expected = dense * np.outer(scale, scale)
    if covariance_type == "spherical":  # per-feature variances, no longer spherical
        np.testing.assert_allclose(rescaled, np.diagonal(expected, axis1=1, axis2=2))
    else:
        np.testing.assert_allclose(covariance.dense(rescaled, K, D), expected)
    # Precisions from the precision-Cholesky factors are the inverses.
    params = GaussianParameters.from_covariances(np.full(K, 1 / K), np.zeros((K, D)),
                                                 covariances, covariance_type)
    precisions = covariance.precisions(params.precisions_cholesky, K, D)
    inverse = np.linalg.inv(dense)
    np.testing.assert_allclose(
        precisions if covariance.quadratic_features else np.stack([np.diag(p) for p in precisions]),
        inverse, rtol=1e-10, atol=1e-12)
    assert covariance.shared == (covariance_type == "tied")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_starting_covariances_and_principal_axes(covariance_type: str) -> None:
    covariance = covariance_of(covariance_type)
    variance = np.array([1.0, 4.0, 0.5, 2.0])
    start = covariance.dense(covariance.from_variances(variance, K), K, D)
    diagonal = np.full(D, variance.mean()) if covariance_type == "spherical" else variance
    np.testing.assert_array_equal(start, np.stack([np.diag(diagonal)] * K))
    for j in range(K):
        direction, spread = covariance.principal_axis(COVARIANCES[covariance_type], j, D)
        values = np.linalg.eigvalsh(DENSE[covariance_type][j])
        np.testing.assert_allclose(spread, values[-1], rtol=1e-12)
        # An eigenvector of the largest eigenvalue (any one, when it is repeated).
        np.testing.assert_allclose(DENSE[covariance_type][j] @ direction, spread * direction,
                                   rtol=1e-10, atol=1e-12)
