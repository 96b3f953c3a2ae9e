"""``BayesianGaussianMixture``: scikit-learn's variational Bayesian Gaussian mixture as a
pyspark.ml estimator, fitted on the statistics passes of EM (docs/bayesian.md)."""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.ml import Estimator
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame

from ..fit.variational import VariationalSettings, fit_variational
from .bayesian_model import BayesianGaussianMixtureModel, BayesianGaussianMixtureSummary
from .bayesian_params import BayesianGaussianMixtureParams
from .bayesian_params import bayesian_default as _d
from .mixture_estimator import MixtureEstimator
from .model import GaussianMixtureModel
from .summary import FitRunRecord


def _setter(name: str) -> Any:
    def set_value(self: Any, value: Any) -> Any:
        return self._set(**{name: value})

    set_value.__name__ = f"set{name[0].upper()}{name[1:]}"
    set_value.__doc__ = f"Set ``{name}``."
    return set_value


class BayesianGaussianMixture(MixtureEstimator, Estimator[BayesianGaussianMixtureModel],
                              BayesianGaussianMixtureParams, DefaultParamsWritable,
                              DefaultParamsReadable["BayesianGaussianMixture"]):
    """Variational Bayesian Gaussian mixture with scikit-learn's ``BayesianGaussianMixture``
    semantics under MLlib-style names, fitted on the executors like ``GaussianMixture``.

    ``k`` is an upper bound: with the Dirichlet-process weight prior and a small
    ``weightConcentrationPrior`` the components the data do not support get weights near 0
    (``model.summary.effectiveComponents`` counts the others). Start: ``initMode`` as
    ``GaussianMixture`` does, or :meth:`setInitialModel`: that model's responsibilities on
    the training rows, then one variational M-step (scikit-learn's
    ``_initialize(X, resp)``).

    Examples
    --------
    >>> bgm = BayesianGaussianMixture(k=10, weightConcentrationPrior=0.01)  # doctest: +SKIP
    >>> model = bgm.fit(df)                                                 # doctest: +SKIP
    >>> model.summary.effectiveComponents                                   # doctest: +SKIP
    """

    _input_kwargs: dict[str, Any]

    @keyword_only
    def __init__(
        self, *, featuresCol: str = _d("featuresCol"),
        predictionCol: str = _d("predictionCol"),
        probabilityCol: str = _d("probabilityCol"), logLikelihoodCol: str | None = None,
        k: int = _d("k"),
        covarianceType: str = _d("covarianceType"), tol: float = _d("tol"),
        maxIter: int = _d("maxIter"), seed: int | None = None,
        aggregationDepth: int = _d("aggregationDepth"), weightCol: str | None = None,
        regCovar: float = _d("regCovar"), initMode: str = _d("initMode"),
        nInit: int = _d("nInit"),
        weightConcentrationPriorType: str = _d("weightConcentrationPriorType"),
        weightConcentrationPrior: float | None = None,
        meanPrecisionPrior: float = _d("meanPrecisionPrior"),
        meanPrior: list[float] | None = None, degreesOfFreedomPrior: float | None = None,
        covariancePrior: list[float] | None = None,
    ) -> None:
        super().__init__()
        self._initial_model: GaussianMixtureModel | None = None
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> BayesianGaussianMixture:
        """Set any of the constructor's keyword parameters."""
        return self._set(**{n: v for n, v in self._input_kwargs.items() if v is not None})

    setK = _setter("k")
    setCovarianceType = _setter("covarianceType")
    setTol = _setter("tol")
    setMaxIter = _setter("maxIter")
    setSeed = _setter("seed")
    setAggregationDepth = _setter("aggregationDepth")
    setWeightCol = _setter("weightCol")
    setFeaturesCol = _setter("featuresCol")
    setPredictionCol = _setter("predictionCol")
    setProbabilityCol = _setter("probabilityCol")
    setLogLikelihoodCol = _setter("logLikelihoodCol")
    setRegCovar = _setter("regCovar")
    setInitMode = _setter("initMode")
    setNInit = _setter("nInit")
    setWeightConcentrationPriorType = _setter("weightConcentrationPriorType")
    setWeightConcentrationPrior = _setter("weightConcentrationPrior")
    setMeanPrecisionPrior = _setter("meanPrecisionPrior")
    setMeanPrior = _setter("meanPrior")
    setDegreesOfFreedomPrior = _setter("degreesOfFreedomPrior")
    setCovariancePrior = _setter("covariancePrior")

    def _settings(self) -> VariationalSettings:
        fit = self._fit_settings()

        def numbers(values: list[float] | None) -> tuple[float, ...] | None:
            return None if values is None else tuple(float(v) for v in values)

        return VariationalSettings(
            fit, self.getWeightConcentrationPriorType(), self.getWeightConcentrationPrior(),
            float(self.getMeanPrecisionPrior()), numbers(self.getMeanPrior()),
            self.getDegreesOfFreedomPrior(), numbers(self.getCovariancePrior()))

    def _fit(self, dataset: DataFrame) -> BayesianGaussianMixtureModel:
        self._validate_params()
        initial = self._initial_model.parameters if self._initial_model is not None else None
        result = fit_variational(dataset, self._settings(), initial)
        model = BayesianGaussianMixtureModel(result.posterior, result.prior,
                                             BayesianGaussianMixtureSummary.from_fit(result),
                                             FitRunRecord.from_fit(result))
        self._copyValues(model)
        return model
