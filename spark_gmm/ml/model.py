"""The fitted model: parameters, training summary, batch and single-row scoring, save/load."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from pyspark.ml import Model
from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import DenseMatrix, DenseVector, Vector, Vectors
from pyspark.ml.util import MLReadable, MLReader, MLWritable, MLWriter
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..kernels import GaussianParameters, e_step
from ..kernels.generate import sample_mixture
from ..runtime.connect import default_parallelism, is_connect
from ..runtime.ingest import allow_arrow_udf_over, features_array
from .mixture_model import MixtureModel
from .params import GaussianMixtureParams
from .persistence import OverwriteOnConnect, load_model_parts, save_model
from .sampling import sample_data_frame
from .scoring import IMPUTED_SCORE_TYPE, SCORE_TYPE, HeldParameters, InClosure, score_features
from .summary import FitRunRecord, GaussianMixtureSummary

_SCORE_COLUMN = "__spark_gmm_score"


class GaussianMixtureModel(
    MixtureModel, Model, GaussianMixtureParams, MLWritable, MLReadable["GaussianMixtureModel"]
):
    """A fitted Gaussian mixture (MLlib-compatible ``transform`` and accessors).

    Parameters
    ----------
    parameters : GaussianParameters
        Weights, means and covariances in the original feature units.
    summary : GaussianMixtureSummary or None
        Training summary; None for models built with :meth:`fromArrays`.
    runRecord : FitRunRecord or None
        How the fit ran (passes, bytes, seconds); None unless fitted in this session.
    noiseBox : (ndarray of shape (D,), ndarray of shape (D,)) or None
        With a noise component: the box of volume V its rows are drawn from by
        :meth:`sample` (the training rows' bounding box, scaled to V when ``noiseVolume``
        was set).
    """

    def __init__(self, parameters: GaussianParameters | None = None,
                 summary: GaussianMixtureSummary | None = None,
                 runRecord: FitRunRecord | None = None,
                 noiseBox: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        super().__init__()
        self._parameters = parameters
        self._summary = summary
        self._run_record = runRecord
        self._noise_box = noiseBox
        self._broadcast: HeldParameters | None = None

    @classmethod
    def fromArrays(cls, weights: Sequence[float] | np.ndarray, means: np.ndarray,
                   covariances: np.ndarray, covarianceType: str = "full",
                   noiseWeight: float | None = None,
                   noiseBox: tuple[Sequence[float], Sequence[float]] | None = None
                   ) -> GaussianMixtureModel:
        """A model from explicit parameters (weights [K], means [K, D], covariances by type);
        with ``noiseWeight`` and ``noiseBox`` (lower and upper corners [D]) also a uniform
        noise component over that box (V its volume; ``weights`` and ``noiseWeight`` sum
        to 1)."""
        if noiseWeight is None:
            model = cls(GaussianParameters.from_covariances(weights, means, covariances,
                                                            covarianceType))
        else:
            if noiseBox is None:
                raise ValueError("a noise component needs its box: pass noiseBox")
            lower, upper = (np.asarray(c, dtype=float) for c in noiseBox)
            model = cls(GaussianParameters.from_covariances(
                weights, means, covariances, covarianceType, noiseWeight,
                float(np.sum(np.log(upper - lower)))), noiseBox=(lower, upper))
        model._set(k=len(model.weights), covarianceType=covarianceType,
                   noise=noiseWeight is not None)
        return model

    @property
    def parameters(self) -> GaussianParameters:
        if self._parameters is None:
            raise ValueError("this model has no parameters; fit or load it first")
        return self._parameters

    @property
    def weights(self) -> np.ndarray:
        """The Gaussians' mixing weights, shape (K,) (with :attr:`noiseWeight`, summing
        to 1)."""
        return self.parameters.weights.copy()

    @property
    def noiseWeight(self) -> float:
        """π_0, the weight of the noise component (0.0 without one); with ``weights`` it
        sums to 1."""
        return float(self.parameters.noise_weight)

    @property
    def noiseLogVolume(self) -> float | None:
        """log V of the noise component (density 1/V); None without one."""
        return self.parameters.noise_log_volume

    @property
    def noiseBox(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The box (lower, upper corners [D]) the noise component's rows are drawn from."""
        return None if self._noise_box is None else (self._noise_box[0].copy(),
                                                     self._noise_box[1].copy())

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
        dense = p.covariance.dense(p.covariances, p.n_components, p.n_features)
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


    def setMissingFeatures(self, value: str) -> GaussianMixtureModel:
        return self._set(missingFeatures=value)

    def setImputedCol(self, value: str) -> GaussianMixtureModel:
        return self._set(imputedCol=value)

    def _row(self, value: Vector | Sequence[float] | np.ndarray) -> np.ndarray:
        x = np.asarray(value.toArray() if isinstance(value, Vector) else value, dtype=float)
        missing = np.isnan(x) if self.getMissingFeatures() == "marginalize" else False
        if (x.shape != (self.numFeatures,) or not np.all(np.isfinite(x) | missing)
                or np.all(missing)):
            raise ValueError(
                f"expected {self.numFeatures} finite feature values; got shape {x.shape}"
            )
        return x[None, :]

    def predict(self, value: Vector | Sequence[float] | np.ndarray) -> int:
        """Index of the most responsible component for one feature vector; −1 when it is
        the noise component."""
        best = int(e_step(self._row(value), self.parameters)[2][0])
        return -1 if best == self.parameters.n_components else best

    def predictProbability(self, value: Vector | Sequence[float] | np.ndarray) -> DenseVector:
        """Responsibilities (summing to 1) of every component for one feature vector (the
        noise component's last)."""
        return Vectors.dense(e_step(self._row(value), self.parameters)[1][0])

    def sample(self, n: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` rows from the mixture on the driver, as scikit-learn's ``sample``.

        Returns
        -------
        x : ndarray of shape (n, D)
            Grouped by component, in component order.
        labels : ndarray of shape (n,)
            The component each row was drawn from; −1 for the noise component's rows,
            uniform in :attr:`noiseBox` (last).
        """
        return sample_mixture(self.parameters, n, np.random.default_rng(seed),
                              self._noise_box)

    def sampleDataFrame(self, spark: SparkSession, n: int, seed: int | None = None,
                        numPartitions: int | None = None) -> DataFrame:
        """Draw ``n`` rows on the executors: a DataFrame with ``features`` (vector) and
        ``label`` (the component drawn from), in ``numPartitions`` partitions (default:
        the session's default parallelism).

        Each partition's generator is seeded by ``(seed, partition index)``, so the rows
        depend on ``seed``, ``n`` and ``numPartitions`` only, not on the cluster. Without a
        seed one is drawn from the operating system's entropy.
        """
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (1 << 63))
        partitions = numPartitions or default_parallelism(spark)
        return sample_data_frame(spark, self.parameters, n, seed, partitions,
                                 self._noise_box)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.sql.functions import arrow_udf

        if is_connect(dataset):
            held: HeldParameters = InClosure(self.parameters)  # Connect has no broadcasts
        else:
            if self._broadcast is None:
                self._broadcast = dataset.sparkSession.sparkContext.broadcast(self.parameters)
            held = self._broadcast
        ll_col = self._log_likelihood_col_or_none()
        imputed_col = self.getImputedCol()
        marginalize = self.getMissingFeatures() == "marginalize"
        outputs = [self.getPredictionCol(), self.getProbabilityCol()] + ([ll_col] if ll_col
                                                                        else [])
        outputs += [imputed_col] if imputed_col else []
        clashes = [name for name in outputs if name in dataset.columns]
        if clashes:
            raise ValueError(f"output column {clashes[0]!r} already exists in the input; "
                             "rename it or set a different output column name")
        # A scalar Arrow UDF sees only the features; every other column stays in the JVM.
        def score_batch(features: pa.Array) -> pa.Array:
            return score_features(held, features, marginalize, bool(imputed_col))

        score = arrow_udf(score_batch, IMPUTED_SCORE_TYPE if imputed_col else SCORE_TYPE)
        allow_arrow_udf_over(dataset)
        scored = dataset.withColumn(_SCORE_COLUMN, score(
            features_array(dataset, self.getFeaturesCol())))
        result = F.col(_SCORE_COLUMN)
        probability = result["probability"]
        # array_to_vector fails on null arrays: rows with invalid features keep a null.
        columns = [F.col(f"`{c}`") for c in dataset.columns] + [
            # MLlib's order: probability, then prediction.
            F.when(probability.isNotNull(), array_to_vector(probability)).alias(outputs[1]),
            result["prediction"].alias(outputs[0]),
        ]
        if ll_col:
            columns.append(result["log_likelihood"].alias(ll_col))
        if imputed_col:
            columns.append(F.when(result["imputed"].isNotNull(),
                                  array_to_vector(result["imputed"])).alias(imputed_col))
        return scored.select(*columns)

    def copy(self, extra: dict | None = None) -> GaussianMixtureModel:
        that = super().copy(extra)
        that._broadcast = None
        that._noise_box = self._noise_box
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


class GaussianMixtureModelWriter(OverwriteOnConnect, MLWriter):
    """Writes a :class:`GaussianMixtureModel`; use ``model.write().overwrite().save(path)``."""

    def __init__(self, instance: GaussianMixtureModel) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        model = self.instance
        save_model(model, model.parameters, model._summary, path, self.sparkSession,
                   model._noise_box)


class GaussianMixtureModelReader(MLReader[GaussianMixtureModel]):
    """Reads a model saved by :class:`GaussianMixtureModelWriter`, validating everything
    (:func:`~spark_gmm.ml.persistence.load_model_parts`)."""

    def __init__(self, cls: type[GaussianMixtureModel]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> GaussianMixtureModel:
        model = self.cls()
        params, summary, noise_box = load_model_parts(model, path, self.sparkSession)
        model._parameters = params
        model._summary = summary
        model._noise_box = noise_box
        return model
