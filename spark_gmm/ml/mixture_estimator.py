"""What ``GaussianMixture`` and ``BayesianGaussianMixture`` share as estimators: the model a
fit starts from, kept by ``copy``, and their params writer."""

from __future__ import annotations

from typing import Any, Self

from .model import GaussianMixtureModel
from .persistence import ParamsWriter


class MixtureEstimator:
    """Mixin of the two mixture estimators (listed before pyspark's ``Estimator`` in their
    bases): ``setInitialModel``, ``copy`` keeping the initial model, and ``write``."""

    _initial_model: GaussianMixtureModel | None = None

    def setInitialModel(self, model: GaussianMixtureModel) -> Self:
        """Start from ``model`` (same k, features and covarianceType) instead of
        ``initMode``: ``GaussianMixture`` runs EM from its parameters,
        ``BayesianGaussianMixture`` from its responsibilities on the training rows and one
        variational M-step."""
        self._initial_model = model
        return self

    def copy(self, extra: dict | None = None) -> Self:
        that: Any = super().copy(extra)  # type: ignore[misc]
        that._initial_model = self._initial_model
        return that

    def write(self) -> ParamsWriter:
        """pyspark.ml's params writer, with ``overwrite()`` working on Spark Connect too."""
        return ParamsWriter(self)  # type: ignore[arg-type]
