"""The public estimator: a drop-in for ``pyspark.ml.clustering.GaussianMixture``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Estimator
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import Column, DataFrame

from .block_store import BlockStore
from .checkpoint import read_checkpoint, write_checkpoint
from .data import (
    InvalidInputError,
    check_weight_column,
    feature_moments,
    features_array,
    store_blocks,
    stored_input_counts,
)
from .distributed import DistributedStatistics
from .em import EMRun, best_run, run_em
from .initialization import InitialisationInput, from_initial_model, initial_mixtures
from .input_checks import InputCounts
from .kernels import GaussianParameters, SufficientStatistics
from .model import GaussianMixtureModel, GaussianMixtureSummary
from .params import GaussianMixtureParams

logger = logging.getLogger(__name__)


class GaussianMixture(
    Estimator[GaussianMixtureModel],
    GaussianMixtureParams,
    DefaultParamsWritable,
    DefaultParamsReadable["GaussianMixture"],
):
    """Gaussian mixture fitted by distributed Expectation-Maximization.

    Same parameter names, defaults and output columns as MLlib's ``GaussianMixture`` plus
    ``covarianceType``, ``regCovar``, ``initMode``, ``nInit``, ``logLikelihoodCol`` and an
    initial model. ``featuresCol`` may hold ml Vectors, ``array<double>`` or ``array<float>``.

    Examples
    --------
    >>> gmm = GaussianMixture(k=3, covarianceType="diag", seed=1)  # doctest: +SKIP
    >>> model = gmm.fit(df)                                         # doctest: +SKIP
    >>> model.transform(df).select("prediction", "probability")    # doctest: +SKIP
    """

    _input_kwargs: dict[str, Any]

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        predictionCol: str = "prediction",
        k: int = 2,
        probabilityCol: str = "probability",
        tol: float = 1e-3,
        maxIter: int = 100,
        seed: int | None = None,
        aggregationDepth: int = 2,
        weightCol: str | None = None,
        covarianceType: str = "full",
        regCovar: float = 1e-6,
        initMode: str = "k-means||",
        nInit: int = 1,
        logLikelihoodCol: str | None = None,
        checkpointPath: str | None = None,
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

    def setInitialModel(self, model: GaussianMixtureModel) -> GaussianMixture:
        """Start EM from ``model`` (same k, features and covarianceType) instead of initMode."""
        self._initial_model = model
        return self

    def copy(self, extra: dict | None = None) -> GaussianMixture:
        that = super().copy(extra)
        that._initial_model = self._initial_model
        return that

    def _fingerprint(self, n_rows: int, n_features: int, weight_sum: float) -> dict[str, Any]:
        # What must match for a checkpoint to belong to this fit.
        return {
            "k": self.getK(), "covarianceType": self.getCovarianceType(),
            "regCovar": self.getRegCovar(), "initMode": self.getInitMode(),
            "nInit": self.getNInit(), "seed": self.getSeed(),
            "initialModel": self._initial_model is not None,
            "rows": n_rows, "features": n_features, "weightSum": weight_sum,
        }

    def _starts(self, dataset: DataFrame, features: Column, weight_col: str | None,
                store: BlockStore, center: np.ndarray, variance: np.ndarray,
                statistics: DistributedStatistics, n_features: int
                ) -> list[GaussianParameters]:
        k = self.getK()
        if self._initial_model is not None:
            return [from_initial_model(self._initial_model.parameters, k, n_features,
                                       self.getCovarianceType(), center)]
        spec = InitialisationInput(
            df=dataset, features=features, weight_col=weight_col, store=store,
            center=center, variance=variance, statistics=statistics, k=k,
            covariance_type=self.getCovarianceType(), reg_covar=self.getRegCovar(),
            seed=self.getSeed() % (2**31), n_init=self.getNInit(),
            depth=self.getAggregationDepth(),
        )
        return initial_mixtures(spec, self.getInitMode())

    def _run_em(self, dataset: DataFrame, features: Column, weight_col: str | None,
                store: BlockStore, counts: InputCounts,
                moments: tuple[np.ndarray, np.ndarray]
                ) -> tuple[EMRun, SufficientStatistics, np.ndarray]:
        checkpoint_path = self._checkpoint_path_or_none()
        fingerprint = self._fingerprint(counts.n_rows, counts.n_features, counts.weight_sum)
        depth = self.getAggregationDepth()
        resumed = read_checkpoint(checkpoint_path, fingerprint) if checkpoint_path else None
        center = resumed[0] if resumed is not None else moments[0]
        statistics = DistributedStatistics(store, center, depth)
        runs = resumed[1] if resumed is not None else [
            EMRun(p) for p in self._starts(dataset, features, weight_col, store, center,
                                           moments[1], statistics, counts.n_features)]
        save = None
        if checkpoint_path:
            def save(_: int, current: Sequence[EMRun]) -> None:
                write_checkpoint(checkpoint_path, fingerprint, center, current)
        # The starts may run Spark jobs of their own (k-means||); the EM passes need none.
        with statistics.resident([r.params for r in runs]):
            run_em(runs, statistics, self.getRegCovar(), self.getMaxIter(), self.getTol(),
                   on_iteration=save)
            best = best_run(runs)
            [final] = statistics([best.params], count_assignments=True)
        logger.info("EM passes: %d by resident tasks, %d as Spark jobs",
                    statistics.resident_passes, statistics.job_passes)
        return best, final, center

    def _fit(self, dataset: DataFrame) -> GaussianMixtureModel:
        self._validate_params()
        features_col = self.getFeaturesCol()
        weight_col = self._weight_col_or_none()
        features = features_array(dataset, features_col)
        check_weight_column(dataset, weight_col)
        store = store_blocks(dataset, features, weight_col)
        try:
            partitions = store.stored_partitions()  # the first pass: files, counts, moments
            counts = stored_input_counts(partitions, features_col, weight_col)
            k = self.getK()
            if k > counts.n_rows:
                raise InvalidInputError(
                    f"k={k} is larger than the number of rows ({counts.n_rows}); reduce k"
                )
            best, final, center = self._run_em(dataset, features, weight_col, store, counts,
                                               feature_moments(partitions))
        finally:
            store.close()
        summary = GaussianMixtureSummary.from_fit(best, final, counts.n_features)
        model = GaussianMixtureModel(best.params.shifted(center), summary)
        self._copyValues(model)
        logger.info("fitted %d components on %d rows in %d iterations (converged: %s)",
                    k, counts.n_rows, best.n_iter, best.converged)
        return model
