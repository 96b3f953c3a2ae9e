"""The fitted model: parameters, training summary, batch and single-row scoring."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.broadcast import Broadcast
from pyspark.ml import Model
from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import DenseMatrix, DenseVector, Vector, Vectors
from pyspark.ml.util import MLReadable, MLWritable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .data import features_array
from .em import EMRun
from .kernels import (
    GaussianParameters,
    SufficientStatistics,
    n_free_parameters,
    score_rows,
)
from .params import GaussianMixtureParams
from .persistence import GaussianMixtureModelReader, GaussianMixtureModelWriter
from .worker import prepare_python_worker

_SCORE_COLUMN = "__spark_gmm_score"


@dataclass(frozen=True)
class GaussianMixtureSummary:
    """Training summary (MLlib's names where MLlib has the quantity).

    Attributes
    ----------
    logLikelihood : float
        Total (weighted) log-likelihood of the final model on the training data.
    logLikelihoodHistory : list of float
        Total log-likelihood at each EM iteration's E-step.
    numIter : int
    converged : bool
    clusterSizes : list of int
        Training rows per component (argmax responsibility).
    weightSum : float
        Σ w (the row count when unweighted).
    numFeatures : int
    iterationSeconds : list of float
    """

    logLikelihood: float
    logLikelihoodHistory: list[float]
    numIter: int
    converged: bool
    clusterSizes: list[int]
    weightSum: float
    numFeatures: int
    covarianceType: str
    iterationSeconds: list[float] = field(default_factory=list)

    @classmethod
    def from_fit(cls, run: EMRun, final: SufficientStatistics, n_features: int
                 ) -> GaussianMixtureSummary:
        return cls(
            logLikelihood=final.log_likelihood,
            logLikelihoodHistory=[m * final.weight_sum for m in run.history],
            numIter=run.n_iter,
            converged=run.converged,
            clusterSizes=[int(c) for c in final.assigned],
            weightSum=final.weight_sum,
            numFeatures=n_features,
            covarianceType=run.params.covariance_type,
            iterationSeconds=list(run.iteration_seconds),
        )

    @property
    def k(self) -> int:
        return len(self.clusterSizes)

    @property
    def numParameters(self) -> int:
        return n_free_parameters(self.covarianceType, self.k, self.numFeatures)

    @property
    def bic(self) -> float:
        """Bayesian information criterion, -2 log L + p log N (lower is better)."""
        return -2.0 * self.logLikelihood + self.numParameters * math.log(self.weightSum)

    @property
    def aic(self) -> float:
        """Akaike information criterion, -2 log L + 2 p (lower is better)."""
        return -2.0 * self.logLikelihood + 2.0 * self.numParameters

    def to_dict(self) -> dict[str, Any]:
        return {
            "logLikelihood": self.logLikelihood,
            "logLikelihoodHistory": self.logLikelihoodHistory,
            "numIter": self.numIter,
            "converged": self.converged,
            "clusterSizes": self.clusterSizes,
            "weightSum": self.weightSum,
            "numFeatures": self.numFeatures,
            "covarianceType": self.covarianceType,
            "iterationSeconds": self.iterationSeconds,
        }


def _score_features(
    params: Broadcast[GaussianParameters], features: pa.Array
) -> pa.StructArray:
    """Prediction, responsibilities and log density for a batch of feature arrays.

    Rows whose features are null, of the wrong length or not finite get null fields.
    """
    prepare_python_worker()
    mixture = params.value
    d, k, n = mixture.n_features, mixture.n_components, len(features)
    if isinstance(features, pa.ChunkedArray):
        features = features.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(features), 0).to_numpy(zero_copy_only=False)
    valid = lengths == d
    if valid.all():
        x = features.flatten().to_numpy(zero_copy_only=False).reshape(n, d)
    else:
        x = np.full((n, d), np.nan)
        if valid.any():
            x[valid] = pc.filter(features, pa.array(valid)).flatten().to_numpy(
                zero_copy_only=False).reshape(-1, d)
    valid &= np.all(np.isfinite(x), axis=1)
    if valid.all():
        log_likelihood, probability, prediction = score_rows(x, mixture)
    else:
        # Invalid rows keep zeros under a null mask.
        prediction = np.zeros(n, dtype=np.intp)
        probability = np.zeros((n, k))
        log_likelihood = np.zeros(n)
        if valid.any():
            log_likelihood[valid], probability[valid], prediction[valid] = score_rows(
                x[valid], mixture)
    invalid = ~valid
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k)
    return pa.StructArray.from_arrays(
        [pa.array(prediction.astype(np.int32), mask=invalid),
         pa.ListArray.from_arrays(offsets, pa.array(probability.ravel()),
                                  mask=pa.array(invalid)),
         pa.array(log_likelihood, mask=invalid)],
        names=["prediction", "probability", "log_likelihood"],
    )


_SCORE_TYPE = "prediction int, probability array<double>, log_likelihood double"


class GaussianMixtureModel(
    Model, GaussianMixtureParams, MLWritable, MLReadable["GaussianMixtureModel"]
):
    """A fitted Gaussian mixture (MLlib-compatible ``transform`` and accessors).

    Parameters
    ----------
    parameters : GaussianParameters
        Weights, means and covariances in the original feature units.
    summary : GaussianMixtureSummary or None
        Training summary; None for models built with :meth:`fromArrays`.
    """

    def __init__(self, parameters: GaussianParameters | None = None,
                 summary: GaussianMixtureSummary | None = None) -> None:
        super().__init__()
        self._parameters = parameters
        self._summary = summary
        self._broadcast: Broadcast[GaussianParameters] | None = None

    @classmethod
    def fromArrays(cls, weights: Sequence[float] | np.ndarray, means: np.ndarray,
                   covariances: np.ndarray, covarianceType: str = "full"
                   ) -> GaussianMixtureModel:
        """A model from explicit parameters (weights [K], means [K, D], covariances by type)."""
        model = cls(GaussianParameters.from_covariances(weights, means, covariances,
                                                        covarianceType))
        model._set(k=len(model.weights), covarianceType=covarianceType)
        return model

    @property
    def parameters(self) -> GaussianParameters:
        if self._parameters is None:
            raise ValueError("this model has no parameters; fit or load it first")
        return self._parameters

    @property
    def weights(self) -> np.ndarray:
        """Mixing weights, shape (K,)."""
        return self.parameters.weights.copy()

    @property
    def means(self) -> np.ndarray:
        """Component means, shape (K, D)."""
        return self.parameters.means.copy()

    @property
    def covariances(self) -> np.ndarray:
        """Covariances: full (K, D, D), tied (D, D), diag (K, D), spherical (K,)."""
        return self.parameters.covariances.copy()

    @property
    def numFeatures(self) -> int:
        return self.parameters.n_features

    @property
    def gaussiansDF(self) -> DataFrame:
        """MLlib's layout: one row per component with ``mean`` (Vector) and ``cov`` (Matrix)."""
        p = self.parameters
        dense = _dense_covariances(p)
        rows = [(DenseVector(p.means[j]), DenseMatrix(p.n_features, p.n_features,
                                                      dense[j].ravel(order="F").tolist()))
                for j in range(p.n_components)]
        return SparkSession.active().createDataFrame(rows, ["mean", "cov"])

    @property
    def hasSummary(self) -> bool:
        return self._summary is not None

    @property
    def summary(self) -> GaussianMixtureSummary:
        if self._summary is None:
            raise RuntimeError("no training summary is available for this model")
        return self._summary

    def setFeaturesCol(self, value: str) -> GaussianMixtureModel:
        return self._set(featuresCol=value)

    def setPredictionCol(self, value: str) -> GaussianMixtureModel:
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value: str) -> GaussianMixtureModel:
        return self._set(probabilityCol=value)

    def setLogLikelihoodCol(self, value: str) -> GaussianMixtureModel:
        return self._set(logLikelihoodCol=value)

    def _row(self, value: Vector | Sequence[float] | np.ndarray) -> np.ndarray:
        x = np.asarray(value.toArray() if isinstance(value, Vector) else value, dtype=float)
        if x.shape != (self.numFeatures,) or not np.all(np.isfinite(x)):
            raise ValueError(
                f"expected {self.numFeatures} finite feature values; got shape {x.shape}"
            )
        return x[None, :]

    def predict(self, value: Vector | Sequence[float] | np.ndarray) -> int:
        """Index of the most responsible component for one feature vector."""
        return int(score_rows(self._row(value), self.parameters)[2][0])

    def predictProbability(self, value: Vector | Sequence[float] | np.ndarray) -> DenseVector:
        """Responsibilities (summing to 1) of every component for one feature vector."""
        return Vectors.dense(score_rows(self._row(value), self.parameters)[1][0])

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.sql.functions import arrow_udf

        if self._broadcast is None:
            self._broadcast = dataset.sparkSession.sparkContext.broadcast(self.parameters)
        ll_col = self._log_likelihood_col_or_none()
        outputs = [self.getPredictionCol(), self.getProbabilityCol()] + ([ll_col] if ll_col
                                                                        else [])
        clashes = [name for name in outputs if name in dataset.columns]
        if clashes:
            raise ValueError(f"output column {clashes[0]!r} already exists in the input; "
                             "rename it or set a different output column name")
        # A scalar Arrow UDF sees only the features; every other column stays in the JVM.
        broadcast = self._broadcast

        def score_batch(features: pa.Array) -> pa.Array:
            return _score_features(broadcast, features)

        score = arrow_udf(score_batch, _SCORE_TYPE)
        scored = dataset.withColumn(_SCORE_COLUMN, score(
            features_array(dataset, self.getFeaturesCol())))
        result = F.col(_SCORE_COLUMN)
        probability = result["probability"]
        # array_to_vector fails on null arrays: rows with invalid features keep a null.
        columns = [F.col(f"`{c}`") for c in dataset.columns] + [
            result["prediction"].alias(outputs[0]),
            F.when(probability.isNotNull(), array_to_vector(probability)).alias(outputs[1]),
        ]
        if ll_col:
            columns.append(result["log_likelihood"].alias(ll_col))
        return scored.select(*columns)

    def copy(self, extra: dict | None = None) -> GaussianMixtureModel:
        that = super().copy(extra)
        that._broadcast = None
        return that

    def write(self) -> GaussianMixtureModelWriter:
        return GaussianMixtureModelWriter(self)

    def save(self, path: str) -> None:
        self.write().save(path)

    @classmethod
    def read(cls) -> GaussianMixtureModelReader:
        return GaussianMixtureModelReader(cls)

    @classmethod
    def load(cls, path: str) -> GaussianMixtureModel:
        return cls.read().load(path)


def _dense_covariances(p: GaussianParameters) -> np.ndarray:
    k, d = p.n_components, p.n_features
    c = p.covariances
    return {
        "full": lambda: c,
        "tied": lambda: np.repeat(c[None], k, axis=0),
        "diag": lambda: np.stack([np.diag(row) for row in c]),
        "spherical": lambda: np.stack([np.eye(d) * v for v in c]),
    }[p.covariance_type]()
