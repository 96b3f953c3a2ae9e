"""The fits the Connect tests compare with a classic session: one definition, used by the
Connect module and by the classic reference it runs in a separate process."""

from __future__ import annotations

from typing import Any

import numpy as np

from spark_gmm.kernels import COVARIANCE_TYPES
from tests.helpers import initial_parameters, make_mixture

PARTITIONS = 3


def data() -> tuple[np.ndarray, np.ndarray]:
    """Rows (n, 3) and positive weights (n,)."""
    x, *_ = make_mixture(n=1200, seed=23, k=3)
    weights = np.random.default_rng(5).uniform(0.5, 2.0, len(x))
    return x, weights


def frame(spark: Any) -> Any:
    """The rows as a DataFrame (id, features vector, w) in PARTITIONS partitions."""
    from pyspark.ml.linalg import Vectors

    x, weights = data()
    rows = [(i, Vectors.dense(r), float(w)) for i, (r, w) in enumerate(zip(x, weights))]
    return spark.createDataFrame(rows, ["id", "features", "w"]).repartition(PARTITIONS, "id")


def cases() -> dict[str, dict[str, Any]]:
    """Name → estimator params (``initial`` names a covariance type whose fixed start the
    case uses)."""
    found: dict[str, dict[str, Any]] = {
        f"fixed-{t}": {"k": 3, "covarianceType": t, "maxIter": 15, "tol": 0.0, "initial": t}
        for t in COVARIANCE_TYPES}
    for mode in ("random", "k-means++", "k-means||"):
        found[f"init-{mode}"] = {"k": 3, "initMode": mode, "nInit": 2, "seed": 11,
                                 "maxIter": 10, "tol": 0.0}
    found["weighted-regularised"] = {"k": 3, "covarianceType": "diag", "weightCol": "w",
                                     "regCovar": 1e-2, "seed": 4, "maxIter": 10, "tol": 0.0}
    found["weighted-map"] = {"k": 3, "covarianceType": "full", "weightCol": "w",
                             "prior": "conjugate", "regCovar": 0.0, "seed": 4, "maxIter": 8,
                             "tol": 0.0}
    return found


def estimator(params: dict[str, Any]) -> Any:
    from spark_gmm import GaussianMixture, GaussianMixtureModel

    params = dict(params)
    initial = params.pop("initial", None)
    gmm = GaussianMixture(**params)
    if initial is not None:
        start = initial_parameters(data()[0], 3, initial, seed=2)
        gmm.setInitialModel(GaussianMixtureModel.fromArrays(
            start.weights, start.means, start.covariances, initial))
    return gmm
