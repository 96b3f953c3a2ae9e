"""The public estimator: a drop-in for ``pyspark.ml.clustering.GaussianMixture``."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Estimator
from pyspark.ml.base import _FitMultipleIterator
from pyspark.ml.param import Param
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame

from ..fit.driver import FitResult, FitSettings, can_share, fit_mixtures
from ..fit.noise import NoiseSettings
from ..fit.prior import PriorSettings
from ..kernels.generate import noise_box
from .mixture_estimator import MixtureEstimator
from .model import GaussianMixtureModel
from .params import PARAMETERS, GaussianMixtureParams, spark_param
from .summary import FitRunRecord, GaussianMixtureSummary


def _default(name: str) -> Any:
    # The constructor shows the declared defaults; only the arguments passed are set.
    return PARAMETERS[name].default


class GaussianMixture(
    MixtureEstimator,
    Estimator[GaussianMixtureModel],
    GaussianMixtureParams,
    DefaultParamsWritable,
    DefaultParamsReadable["GaussianMixture"],
):
    """Gaussian mixture fitted by distributed Expectation-Maximization.

    Same parameter names, defaults and output columns as MLlib's ``GaussianMixture`` plus
    ``covarianceType``, ``regCovar``, ``initMode``, ``nInit``, ``logLikelihoodCol``, an
    initial model, and MAP-EM under a conjugate prior (``prior="conjugate"`` and the
    ``prior*`` hyperparameters, docs/bayesian.md), and a uniform noise component
    (``noise=True``, docs/real-rows.md). ``featuresCol`` may hold ml Vectors,
    ``array<double>`` or ``array<float>``.

    Examples
    --------
    >>> gmm = GaussianMixture(k=3, covarianceType="diag", seed=1)  # doctest: +SKIP
    >>> model = gmm.fit(df)                                         # doctest: +SKIP
    >>> model.transform(df).select("prediction", "probability")    # doctest: +SKIP
    """

    _input_kwargs: dict[str, Any]

    # The estimator's alone: a model does not carry where its fit kept its checkpoints.
    checkpointPath: Param[str] = spark_param("checkpointPath")
    # How the fit spreads its rows over the task slots: not a property of the model either.
    balanceRows: Param[bool] = spark_param("balanceRows")

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = _default("featuresCol"),
        predictionCol: str = _default("predictionCol"),
        k: int = _default("k"),
        probabilityCol: str = _default("probabilityCol"),
        tol: float = _default("tol"),
        maxIter: int = _default("maxIter"),
        seed: int | None = None,  # None: the declared default seed
        aggregationDepth: int = _default("aggregationDepth"),
        weightCol: str | None = None,
        covarianceType: str = _default("covarianceType"),
        regCovar: float = _default("regCovar"),
        initMode: str = _default("initMode"),
        nInit: int = _default("nInit"),
        logLikelihoodCol: str | None = None,
        checkpointPath: str | None = None,
        prior: str = _default("prior"),
        priorMean: list[float] | None = None,
        priorShrinkage: float = _default("priorShrinkage"),
        priorDegreesOfFreedom: float | None = None,
        priorScale: list[float] | None = None,
        balanceRows: bool = _default("balanceRows"),
        noise: bool = _default("noise"),
        noiseVolume: float | None = None,
        noiseInitialWeight: float = _default("noiseInitialWeight"),
        missingFeatures: str = _default("missingFeatures"),
        imputedCol: str | None = None,
    ) -> None:
        super().__init__()
        self._initial_model: GaussianMixtureModel | None = None
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> GaussianMixture:
        """Set any of the constructor's keyword parameters."""
        kwargs = {name: value for name, value in self._input_kwargs.items() if value is not None}
        return self._set(**kwargs)

    def setK(self, value: int) -> GaussianMixture:
        return self._set(k=value)

    def setCovarianceType(self, value: str) -> GaussianMixture:
        return self._set(covarianceType=value)

    def setRegCovar(self, value: float) -> GaussianMixture:
        return self._set(regCovar=value)

    def setInitMode(self, value: str) -> GaussianMixture:
        return self._set(initMode=value)

    def setNInit(self, value: int) -> GaussianMixture:
        return self._set(nInit=value)

    def setLogLikelihoodCol(self, value: str) -> GaussianMixture:
        return self._set(logLikelihoodCol=value)

    def setMaxIter(self, value: int) -> GaussianMixture:
        return self._set(maxIter=value)

    def setTol(self, value: float) -> GaussianMixture:
        return self._set(tol=value)

    def setSeed(self, value: int) -> GaussianMixture:
        return self._set(seed=value)

    def setAggregationDepth(self, value: int) -> GaussianMixture:
        return self._set(aggregationDepth=value)

    def setWeightCol(self, value: str) -> GaussianMixture:
        return self._set(weightCol=value)

    def setFeaturesCol(self, value: str) -> GaussianMixture:
        return self._set(featuresCol=value)

    def setPredictionCol(self, value: str) -> GaussianMixture:
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value: str) -> GaussianMixture:
        return self._set(probabilityCol=value)

    def setCheckpointPath(self, value: str) -> GaussianMixture:
        return self._set(checkpointPath=value)

    def setPrior(self, value: str) -> GaussianMixture:
        return self._set(prior=value)

    def setPriorMean(self, value: list[float]) -> GaussianMixture:
        return self._set(priorMean=value)

    def setPriorShrinkage(self, value: float) -> GaussianMixture:
        return self._set(priorShrinkage=value)

    def setPriorDegreesOfFreedom(self, value: float) -> GaussianMixture:
        return self._set(priorDegreesOfFreedom=value)

    def setPriorScale(self, value: list[float]) -> GaussianMixture:
        return self._set(priorScale=value)

    def setBalanceRows(self, value: bool) -> GaussianMixture:
        return self._set(balanceRows=value)

    def setNoise(self, value: bool) -> GaussianMixture:
        return self._set(noise=value)

    def setNoiseVolume(self, value: float) -> GaussianMixture:
        return self._set(noiseVolume=value)

    def setNoiseInitialWeight(self, value: float) -> GaussianMixture:
        return self._set(noiseInitialWeight=value)

    def setMissingFeatures(self, value: str) -> GaussianMixture:
        return self._set(missingFeatures=value)

    def setImputedCol(self, value: str) -> GaussianMixture:
        return self._set(imputedCol=value)

    def getBalanceRows(self) -> bool:
        """Whether the fit spreads its stored rows evenly over the task slots."""
        return self.getOrDefault(self.balanceRows)

    def getCheckpointPath(self) -> str:
        """File of the EM checkpoint."""
        return self.getOrDefault(self.checkpointPath)

    def _settings(self) -> FitSettings:
        if self.getNoise() and self.getMissingFeatures() == "marginalize":
            raise ValueError("missingFeatures='marginalize' and noise=True cannot be combined "
                             "yet; drop or impute the rows with missing features to fit a "
                             "noise component")
        checkpoint = (self.getCheckpointPath() if self.isDefined(self.checkpointPath)
                      else None)
        return self._fit_settings(
            checkpoint_path=checkpoint or None,
            prior=PriorSettings.of(self.getPrior(), self.getPriorMean(),
                                   self.getPriorShrinkage(), self.getPriorDegreesOfFreedom(),
                                   self.getPriorScale()),
            balance_rows=self.getBalanceRows(),
            noise=NoiseSettings(self.getNoiseVolume(), self.getNoiseInitialWeight())
            if self.getNoise() else None,
            marginalize=self.getMissingFeatures() == "marginalize",
        )

    def _fit(self, dataset: DataFrame) -> GaussianMixtureModel:
        # One fit is a shared fit of one map: the fit path exists once.
        return _fit_together(dataset, [self])[0]

    def _model_of(self, result: FitResult, dataset: DataFrame) -> GaussianMixtureModel:
        params = result.parameters
        box = (noise_box(*result.bounds, params.noise_log_volume)
               if params.noise_log_volume is not None and result.bounds is not None else None)
        model = GaussianMixtureModel(params, runRecord=FitRunRecord.from_fit(result),
                                     noiseBox=box)
        self._copyValues(model)
        # The summary's predictions: the training rows as the model transforms them now,
        # made on first use (a later setPredictionCol on the model does not change them).
        as_fitted = model.copy()
        model._summary = GaussianMixtureSummary.from_fit(
            result, (model.getFeaturesCol(), model.getPredictionCol(),
                     model.getProbabilityCol()),
            lambda: as_fitted.transform(dataset))
        return model

    def fitMultiple(self, dataset: DataFrame, paramMaps: Sequence[dict[Param, Any]]
                    ) -> Iterator[tuple[int, GaussianMixtureModel]]:
        """Fit a model for each param map, as pyspark.ml's ``fitMultiple`` (what
        ``CrossValidator`` and ``TrainValidationSplit`` call): a thread-safe iterator of
        ``(index, model)``.

        Maps that differ only in ``k``, ``covarianceType``, ``regCovar``, ``seed``,
        ``initMode``, ``nInit``, ``maxIter``, ``tol``, the prior's and the noise's params
        (and set no
        ``checkpointPath``)
        are fitted together: the rows are stored once, their initialisations share each
        pass, and every EM pass computes the statistics of all models still running; each
        model equals the one ``fit`` gives for its map. Other maps are fitted one after
        another.
        """
        estimators = [self.copy(dict(m)) for m in paramMaps]
        if len(estimators) < 2 or not can_share([e._settings() for e in estimators]):
            return super().fitMultiple(dataset, paramMaps)
        lock = threading.Lock()
        models: list[GaussianMixtureModel] = []

        def fit_one(index: int) -> GaussianMixtureModel:
            with lock:  # the first caller fits them all; the others take theirs
                if not models:
                    models.extend(_fit_together(dataset, estimators))
            return models[index]

        return _FitMultipleIterator(fit_one, len(estimators))


def _fit_together(dataset: DataFrame, estimators: Sequence[GaussianMixture]
                  ) -> list[GaussianMixtureModel]:
    # Every estimator's model from one fit in shared passes (their settings can share).
    for estimator in estimators:
        estimator._validate_params()
    initials = [e._initial_model.parameters if e._initial_model is not None else None
                for e in estimators]
    results = fit_mixtures(dataset, [e._settings() for e in estimators], initials)
    return [e._model_of(result, dataset) for e, result in zip(estimators, results)]
