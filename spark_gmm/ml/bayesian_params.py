"""Params of ``BayesianGaussianMixture`` and its model, declared once in
:data:`~spark_gmm.fit.param_rules.BAYESIAN_PARAMETERS` (defaults, validation, the README's
table); what they share with ``GaussianMixture`` comes from :class:`~.params.MixtureParams`."""

from __future__ import annotations

from typing import Any, ClassVar

from pyspark.ml.param import Param

from ..fit.param_rules import BAYESIAN_PARAMETERS, ParameterRule
from .params import MixtureParams, spark_param


def _param(name: str) -> Param:
    return spark_param(name, BAYESIAN_PARAMETERS)


def bayesian_default(name: str) -> Any:
    """The declared default of ``name`` (None: unset)."""
    return BAYESIAN_PARAMETERS[name].default


class BayesianGaussianMixtureParams(MixtureParams):
    """Params of :class:`BayesianGaussianMixture` and its model, declared in
    :data:`~spark_gmm.fit.param_rules.BAYESIAN_PARAMETERS` (defaults and validation)."""

    _rules: ClassVar[dict[str, ParameterRule]] = BAYESIAN_PARAMETERS
    nInit: Param[int] = _param("nInit")
    logLikelihoodCol: Param[str] = _param("logLikelihoodCol")
    weightConcentrationPriorType: Param[str] = _param("weightConcentrationPriorType")
    weightConcentrationPrior: Param[float] = _param("weightConcentrationPrior")
    meanPrecisionPrior: Param[float] = _param("meanPrecisionPrior")
    meanPrior: Param[list[float]] = _param("meanPrior")
    degreesOfFreedomPrior: Param[float] = _param("degreesOfFreedomPrior")
    covariancePrior: Param[list[float]] = _param("covariancePrior")

    def _get_or_none(self, name: str) -> Any:
        return self.getOrDefault(name) if self.isDefined(name) else None

    def getWeightConcentrationPriorType(self) -> str:
        """``dirichlet_process`` or ``dirichlet_distribution``."""
        return self.getOrDefault(self.weightConcentrationPriorType)

    def getWeightConcentrationPrior(self) -> float | None:
        """α₀; None: 1/k."""
        return self._get_or_none("weightConcentrationPrior")

    def getMeanPrecisionPrior(self) -> float:
        """β₀."""
        return self.getOrDefault(self.meanPrecisionPrior)

    def getMeanPrior(self) -> list[float] | None:
        """m₀ [D]; None: the weighted mean of the training rows."""
        return self._get_or_none("meanPrior")

    def getDegreesOfFreedomPrior(self) -> float | None:
        """ν₀; None: D."""
        return self._get_or_none("degreesOfFreedomPrior")

    def getCovariancePrior(self) -> list[float] | None:
        """Ψ₀ as 1, D or D×D values; None: from the training rows' covariance."""
        return self._get_or_none("covariancePrior")
