"""Spark ML parameters shared by the estimator and the model (MLlib's names and defaults)."""

from __future__ import annotations

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

from ..kernels import COVARIANCE_TYPES

INIT_MODES = ("k-means||", "k-means++", "random")
# pyspark derives its default seed from hash(), which changes between Python processes;
# a fixed default keeps unseeded fits reproducible.
_DEFAULT_SEED = 20240531


class GaussianMixtureParams(
    HasFeaturesCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasMaxIter,
    HasTol,
    HasSeed,
    HasWeightCol,
    HasAggregationDepth,
):
    """Params of :class:`GaussianMixture` and :class:`GaussianMixtureModel`."""

    k: Param[int] = Param(
        Params._dummy(), "k", "Number of independent Gaussians in the mixture model. Must be > 0.",
        typeConverter=TypeConverters.toInt,
    )
    covarianceType: Param[str] = Param(
        Params._dummy(), "covarianceType",
        "Covariance structure: " + ", ".join(COVARIANCE_TYPES) + ".",
        typeConverter=TypeConverters.toString,
    )
    regCovar: Param[float] = Param(
        Params._dummy(), "regCovar",
        "Non-negative value added to the diagonal of every covariance so it stays positive "
        "definite.", typeConverter=TypeConverters.toFloat,
    )
    initMode: Param[str] = Param(
        Params._dummy(), "initMode",
        "Initialisation: 'k-means||' (distributed, MLlib KMeans), 'k-means++' (on a seeded "
        "driver-side sample) or 'random' (equal weights, k random rows, diagonal covariance).",
        typeConverter=TypeConverters.toString,
    )
    nInit: Param[int] = Param(
        Params._dummy(), "nInit",
        "Number of initialisations; the fit with the best final log-likelihood is kept. All "
        "restarts share each pass over the data.", typeConverter=TypeConverters.toInt,
    )
    logLikelihoodCol: Param[str] = Param(
        Params._dummy(), "logLikelihoodCol",
        "Column for the per-row log density log p(x); not added when unset.",
        typeConverter=TypeConverters.toString,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            k=2, covarianceType="full", maxIter=100, tol=1e-3, regCovar=1e-6,
            initMode="k-means||", nInit=1, aggregationDepth=2, seed=_DEFAULT_SEED,
        )

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

    def _validate_params(self) -> None:
        """Raise ValueError naming the param and its allowed values."""
        if self.getK() < 1:
            raise ValueError(f"k must be at least 1; got {self.getK()}")
        if self.getCovarianceType() not in COVARIANCE_TYPES:
            raise ValueError(
                f"covarianceType must be one of {', '.join(COVARIANCE_TYPES)}; got "
                f"{self.getCovarianceType()!r}"
            )
        if self.getInitMode() not in INIT_MODES:
            raise ValueError(
                f"initMode must be one of {', '.join(INIT_MODES)}; got {self.getInitMode()!r}"
            )
        if not self.getRegCovar() >= 0:
            raise ValueError(f"regCovar must be >= 0; got {self.getRegCovar()}")
        if not self.getTol() >= 0:
            raise ValueError(f"tol must be >= 0; got {self.getTol()}")
        if self.getMaxIter() < 1:
            raise ValueError(f"maxIter must be at least 1; got {self.getMaxIter()}")
        if self.getNInit() < 1:
            raise ValueError(f"nInit must be at least 1; got {self.getNInit()}")
        if self.getAggregationDepth() < 1:
            raise ValueError(
                f"aggregationDepth must be at least 1; got {self.getAggregationDepth()}"
            )
