"""Params of ``BayesianGaussianMixture`` and its model, declared once in
:data:`~spark_gmm.fit.param_rules.BAYESIAN_PARAMETERS` (defaults, validation, the README's
table)."""

from __future__ import annotations

from typing import Any

from pyspark.ml.param import Param
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

from ..fit.param_rules import BAYESIAN_PARAMETERS
from .params import spark_param


def _param(name: str) -> Param:
    return spark_param(name, BAYESIAN_PARAMETERS)


def bayesian_default(name: str) -> Any:
    """The declared default of ``name`` (None: unset)."""
    return BAYESIAN_PARAMETERS[name].default


class BayesianGaussianMixtureParams(HasFeaturesCol, HasPredictionCol, HasProbabilityCol,
                                    HasMaxIter, HasTol, HasSeed, HasWeightCol,
                                    HasAggregationDepth):
    """Params of :class:`BayesianGaussianMixture` and its model, declared in
    :data:`~spark_gmm.fit.param_rules.BAYESIAN_PARAMETERS` (defaults and validation)."""

    k: Param[int] = _param("k")
    covarianceType: Param[str] = _param("covarianceType")
    regCovar: Param[float] = _param("regCovar")
    initMode: Param[str] = _param("initMode")
    nInit: Param[int] = _param("nInit")
    weightConcentrationPriorType: Param[str] = _param("weightConcentrationPriorType")
    weightConcentrationPrior: Param[float] = _param("weightConcentrationPrior")
    meanPrecisionPrior: Param[float] = _param("meanPrecisionPrior")
    meanPrior: Param[list[float]] = _param("meanPrior")
    degreesOfFreedomPrior: Param[float] = _param("degreesOfFreedomPrior")
    covariancePrior: Param[list[float]] = _param("covariancePrior")

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(**{rule.name: rule.default for rule in BAYESIAN_PARAMETERS.values()
                            if rule.default is not None and self.hasParam(rule.name)})

    def _get_or_none(self, name: str) -> Any:
        return self.getOrDefault(name) if self.isDefined(name) else None

    def getK(self) -> int:
        """The number of components at most."""
        return self.getOrDefault(self.k)

    def getCovarianceType(self) -> str:
        return self.getOrDefault(self.covarianceType)

    def getRegCovar(self) -> float:
        return self.getOrDefault(self.regCovar)

    def getInitMode(self) -> str:
        return self.getOrDefault(self.initMode)

    def getNInit(self) -> int:
        return self.getOrDefault(self.nInit)

    def getWeightConcentrationPriorType(self) -> str:
        return self.getOrDefault(self.weightConcentrationPriorType)

    def getWeightConcentrationPrior(self) -> float | None:
        """α₀; None: 1/k."""
        return self._get_or_none("weightConcentrationPrior")

    def getMeanPrecisionPrior(self) -> float:
        return self.getOrDefault(self.meanPrecisionPrior)

    def getMeanPrior(self) -> list[float] | None:
        return self._get_or_none("meanPrior")

    def getDegreesOfFreedomPrior(self) -> float | None:
        return self._get_or_none("degreesOfFreedomPrior")

    def getCovariancePrior(self) -> list[float] | None:
        return self._get_or_none("covariancePrior")

    def _validate_params(self) -> None:
        """Raise ValueError naming the param, its value and its allowed values."""
        for rule in BAYESIAN_PARAMETERS.values():
            if self.hasParam(rule.name) and self.isDefined(rule.name):
                rule.check(self.getOrDefault(rule.name))
