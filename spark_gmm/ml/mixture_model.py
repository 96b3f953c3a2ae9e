"""What ``GaussianMixtureModel`` and ``BayesianGaussianMixtureModel`` share as fitted models:
the run record of the fit that made them, and the setters of their columns."""

from __future__ import annotations

from typing import Any, Self

from .summary import FitRunRecord


class MixtureModel:
    """Mixin of the two fitted mixture models (listed before pyspark's ``Model`` in their
    bases): ``hasRunRecord``/``runRecord`` and the column setters."""

    _run_record: FitRunRecord | None = None
    _set: Any  # pyspark.ml's Params._set, from the model's other bases

    @property
    def hasRunRecord(self) -> bool:
        return self._run_record is not None

    @property
    def runRecord(self) -> FitRunRecord:
        """How the fit ran: passes, stored bytes, the seconds of each phase and of each
        iteration (:class:`~spark_gmm.ml.summary.FitRunRecord`). Only for a model fitted in
        this session: it is not saved with the model."""
        if self._run_record is None:
            raise RuntimeError("no run record is available for this model: it is kept by "
                               "the fitted model only, not saved with it")
        return self._run_record

    def setFeaturesCol(self, value: str) -> Self:
        return self._set(featuresCol=value)

    def setPredictionCol(self, value: str) -> Self:
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value: str) -> Self:
        return self._set(probabilityCol=value)

    def setLogLikelihoodCol(self, value: str) -> Self:
        """Add each row's log density as ``value``: log p(x) for a ``GaussianMixtureModel``,
        log Σ_k ρ_k (scikit-learn's ``score_samples``) for a
        ``BayesianGaussianMixtureModel``."""
        return self._set(logLikelihoodCol=value)
