"""Spark ML parameters shared by the estimator and the model (MLlib's names and defaults),
derived from the one declaration of every parameter (:data:`PARAMETERS`)."""

from __future__ import annotations

from typing import Any, ClassVar

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasAggregationDepth,
    HasFeaturesCol,
    HasMaxIter,
    HasPredictionCol,
    HasProbabilityCol,
    HasSeed,
    HasTol,
    HasWeightCol,
)

from ..fit.driver import FitSettings
from ..fit.param_rules import INIT_MODES, PARAMETERS, ParameterRule, parameter_table_markdown

__all__ = ["INIT_MODES", "PARAMETERS", "GaussianMixtureParams", "MixtureParams",
           "parameter_table_markdown", "spark_param"]

_CONVERTERS = {int: TypeConverters.toInt, float: TypeConverters.toFloat,
               str: TypeConverters.toString, list: TypeConverters.toListFloat,
               bool: TypeConverters.toBoolean}


def spark_param(name: str, rules: dict[str, ParameterRule] = PARAMETERS) -> Param:
    """The pyspark Param of the declared parameter ``name`` (its meaning as the doc), from
    :data:`PARAMETERS` or another declaration (``BAYESIAN_PARAMETERS``)."""
    rule: ParameterRule = rules[name]
    allowed = f" Allowed: {rule.allowed.replace('`', '')}." if rule.allowed != "any" else ""
    return Param(Params._dummy(), rule.name, rule.meaning.replace("`", "") + "." + allowed,
                 typeConverter=_CONVERTERS[rule.type])


class MixtureParams(
    HasFeaturesCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasMaxIter,
    HasTol,
    HasSeed,
    HasWeightCol,
    HasAggregationDepth,
):
    """What the params of :class:`GaussianMixtureParams` and of the Bayesian estimator
    (:mod:`.bayesian_params`) share: MLlib's shared params from pyspark, ``k``,
    ``covarianceType``, ``regCovar``, ``initMode`` and the getters; the defaults and the
    validation come from the subclass's declaration, :attr:`_rules`. Each subclass declares
    ``nInit`` and ``logLikelihoodCol`` (their meanings differ)."""

    _rules: ClassVar[dict[str, ParameterRule]] = PARAMETERS
    k: Param[int] = spark_param("k")
    covarianceType: Param[str] = spark_param("covarianceType")
    regCovar: Param[float] = spark_param("regCovar")
    initMode: Param[str] = spark_param("initMode")
    nInit: Param[int]
    logLikelihoodCol: Param[str]

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(**{rule.name: rule.default for rule in self._rules.values()
                            if rule.default is not None and self.hasParam(rule.name)})

    def getK(self) -> int:
        """Number of components K."""
        return self.getOrDefault(self.k)

    def getCovarianceType(self) -> str:
        """Covariance structure: full, tied, diag or spherical."""
        return self.getOrDefault(self.covarianceType)

    def getRegCovar(self) -> float:
        """Value added to the covariance diagonals."""
        return self.getOrDefault(self.regCovar)

    def getInitMode(self) -> str:
        """Initialisation mode."""
        return self.getOrDefault(self.initMode)

    def getNInit(self) -> int:
        """Number of initialisations."""
        return self.getOrDefault(self.nInit)

    def getLogLikelihoodCol(self) -> str:
        """Column name for the per-row log density."""
        return self.getOrDefault(self.logLikelihoodCol)

    def _weight_col_or_none(self) -> str | None:
        if self.isDefined(self.weightCol) and self.getWeightCol():
            return self.getWeightCol()
        return None

    def _log_likelihood_col_or_none(self) -> str | None:
        if self.isDefined(self.logLikelihoodCol) and self.getLogLikelihoodCol():
            return self.getLogLikelihoodCol()
        return None

    def _fit_settings(self, checkpoint_path: str | None = None, **specific: Any
                      ) -> FitSettings:
        """The fit's settings from the params every mixture estimator has; ``specific``
        adds the estimator's own (:class:`~spark_gmm.fit.driver.FitSettings` fields)."""
        return FitSettings(
            features_col=self.getFeaturesCol(), weight_col=self._weight_col_or_none(),
            k=self.getK(), covariance_type=self.getCovarianceType(),
            max_iter=self.getMaxIter(), tol=self.getTol(), reg_covar=self.getRegCovar(),
            init_mode=self.getInitMode(), n_init=self.getNInit(), seed=self.getSeed(),
            depth=self.getAggregationDepth(), checkpoint_path=checkpoint_path, **specific)

    def _validate_params(self) -> None:
        """Raise ValueError naming the param, its value and its allowed values."""
        for rule in self._rules.values():
            if self.hasParam(rule.name) and self.isDefined(rule.name):
                rule.check(self.getOrDefault(rule.name))


class GaussianMixtureParams(MixtureParams):
    """Params of :class:`GaussianMixture` and :class:`GaussianMixtureModel`: MLlib's shared
    ones from pyspark, the others from :data:`PARAMETERS`; defaults and validation from
    :data:`PARAMETERS` for all."""

    nInit: Param[int] = spark_param("nInit")
    logLikelihoodCol: Param[str] = spark_param("logLikelihoodCol")
    prior: Param[str] = spark_param("prior")
    priorMean: Param[list[float]] = spark_param("priorMean")
    priorShrinkage: Param[float] = spark_param("priorShrinkage")
    priorDegreesOfFreedom: Param[float] = spark_param("priorDegreesOfFreedom")
    priorScale: Param[list[float]] = spark_param("priorScale")
    noise: Param[bool] = spark_param("noise")
    noiseVolume: Param[float] = spark_param("noiseVolume")
    noiseInitialWeight: Param[float] = spark_param("noiseInitialWeight")
    missingFeatures: Param[str] = spark_param("missingFeatures")
    imputedCol: Param[str] = spark_param("imputedCol")

    def getPrior(self) -> str:
        """``none`` (maximum likelihood) or ``conjugate`` (MAP-EM)."""
        return self.getOrDefault(self.prior)

    def getPriorMean(self) -> list[float] | None:
        """μ_P [D]; None: the weighted mean of the training rows."""
        return self.getOrDefault(self.priorMean) if self.isDefined(self.priorMean) else None

    def getPriorShrinkage(self) -> float:
        """κ."""
        return self.getOrDefault(self.priorShrinkage)

    def getPriorDegreesOfFreedom(self) -> float | None:
        """ν; None: D + 2."""
        return (self.getOrDefault(self.priorDegreesOfFreedom)
                if self.isDefined(self.priorDegreesOfFreedom) else None)

    def getPriorScale(self) -> list[float] | None:
        """Λ as 1, D or D×D values; None: from the training rows' covariance."""
        return self.getOrDefault(self.priorScale) if self.isDefined(self.priorScale) else None

    def getNoise(self) -> bool:
        """Whether the mixture has a uniform noise component."""
        return self.getOrDefault(self.noise)

    def getNoiseVolume(self) -> float | None:
        """V of the noise component; None: the training rows' bounding box."""
        return self.getOrDefault(self.noiseVolume) if self.isDefined(self.noiseVolume) else None

    def getMissingFeatures(self) -> str:
        """``error`` (NaN or null features make a row invalid) or ``marginalize``."""
        return self.getOrDefault(self.missingFeatures)

    def getImputedCol(self) -> str | None:
        """The output column of the features with missing entries imputed; None: none."""
        return (self.getOrDefault(self.imputedCol) or None
                if self.isDefined(self.imputedCol) else None)

    def getNoiseInitialWeight(self) -> float:
        """The noise component's weight when EM starts."""
        return self.getOrDefault(self.noiseInitialWeight)
