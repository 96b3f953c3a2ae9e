"""The fitted ``BayesianGaussianMixtureModel``: the variational posterior, its summary,
scoring as scikit-learn's ``predict``/``predict_proba``, sampling, save/load (JSON metadata
and Parquet arrays, as :mod:`.persistence`; nothing pickled)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pyspark.ml import Model
from pyspark.ml.linalg import DenseVector, Vector, Vectors
from pyspark.ml.util import (
    DefaultParamsReader,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StructField, StructType

from ..errors import ModelFormatError, cause_in_words
from ..fit.variational import VariationalResult
from ..kernels import COVARIANCE_TYPES, GaussianParameters, covariance_of, e_step
from ..kernels.generate import sample_mixture
from ..kernels.variational import WEIGHT_PRIOR_TYPES, VariationalParameters, VariationalPrior
from ..version import __version__
from .bayesian_params import BayesianGaussianMixtureParams
from .mixture_model import MixtureModel
from .model import GaussianMixtureModel
from .persistence import FORMAT_VERSION, OverwriteOnConnect, _metadata, _shaped
from .summary import FitRunRecord

#: A component counts as effective when its expected weight (``weights``) exceeds this: 1 %
#: of the rows' weight (a component without rows keeps a weight of about 1/N).
EFFECTIVE_WEIGHT = 0.01

_DATA_SCHEMA = StructType([
    StructField("component", IntegerType(), False),
    StructField("weightConcentration", ArrayType(DoubleType(), False), False),
    StructField("meanPrecision", DoubleType(), False),
    StructField("mean", ArrayType(DoubleType(), False), False),
    StructField("degreesOfFreedom", DoubleType(), False),
    StructField("covariance", ArrayType(DoubleType(), False), False),
])


@dataclass(frozen=True)
class BayesianGaussianMixtureSummary:
    """What a variational fit found (saved with the model).

    Attributes
    ----------
    lowerBound : float
        The final lower bound (scikit-learn's ``lower_bound_``).
    lowerBoundHistory : list of float
        After each iteration (``lower_bounds_``).
    numIter : int
    converged : bool
    weights : list of float
        The expected weights, to count the effective components.
    restartLowerBounds : list of list of float
        Every restart's history (``nInit``).
    """

    lowerBound: float
    lowerBoundHistory: list[float]
    numIter: int
    converged: bool
    weights: list[float]
    restartLowerBounds: list[list[float]]

    @classmethod
    def from_fit(cls, result: VariationalResult) -> BayesianGaussianMixtureSummary:
        best = result.best
        return cls(best.lower_bounds[-1], list(best.lower_bounds), best.n_iter,
                   best.converged, result.posterior.weights.tolist(),
                   result.restart_lower_bounds)

    @property
    def k(self) -> int:
        return len(self.weights)

    @property
    def effectiveComponents(self) -> int:
        """Components whose expected weight exceeds :data:`EFFECTIVE_WEIGHT` (0.01)."""
        return int(np.sum(np.array(self.weights) > EFFECTIVE_WEIGHT))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> BayesianGaussianMixtureSummary:
        return cls(float(saved["lowerBound"]), [float(v) for v in saved["lowerBoundHistory"]],
                   int(saved["numIter"]), bool(saved["converged"]),
                   [float(v) for v in saved["weights"]],
                   [[float(v) for v in h] for h in saved["restartLowerBounds"]])


class BayesianGaussianMixtureModel(MixtureModel, Model, BayesianGaussianMixtureParams, MLWritable,
                                   MLReadable["BayesianGaussianMixtureModel"]):
    """A fitted variational Bayesian mixture (scikit-learn's fitted attributes under
    camelCase names); ``transform`` adds ``predictionCol`` and ``probabilityCol`` as
    scikit-learn's ``predict`` and ``predict_proba``.

    Parameters
    ----------
    posterior : VariationalParameters
        In the features' units.
    prior : VariationalPrior
        The priors the fit used (defaults resolved), in the features' units.
    summary : BayesianGaussianMixtureSummary or None
    runRecord : FitRunRecord or None
        How the fit ran (passes, seconds of each iteration); not saved with the model.
    """

    def __init__(self, posterior: VariationalParameters | None = None,
                 prior: VariationalPrior | None = None,
                 summary: BayesianGaussianMixtureSummary | None = None,
                 runRecord: FitRunRecord | None = None) -> None:
        super().__init__()
        self._posterior, self._prior, self._summary = posterior, prior, summary
        self._run_record = runRecord
        self._scorer: GaussianMixtureModel | None = None

    @property
    def posterior(self) -> VariationalParameters:
        if self._posterior is None:
            raise ValueError("this model has no parameters; fit or load it first")
        return self._posterior

    @property
    def prior(self) -> VariationalPrior:
        """The priors of the fit, scikit-learn's defaults resolved."""
        if self._prior is None:
            raise ValueError("this model has no prior; fit or load it first")
        return self._prior

    @property
    def weights(self) -> np.ndarray:
        """Expected weights, normalised (scikit-learn's ``weights_``), shape (K,)."""
        return self.posterior.weights

    @property
    def means(self) -> np.ndarray:
        """m_k, shape (K, D)."""
        return self.posterior.means.copy()

    @property
    def covariances(self) -> np.ndarray:
        """(ν_k W_k)⁻¹ (scikit-learn's ``covariances_``): full (K, D, D), tied (D, D),
        diag (K, D), spherical (K,)."""
        return self.posterior.covariances.copy()

    @property
    def weightConcentration(self) -> np.ndarray:
        """Dirichlet process: (2, K), each stick's Beta (a_k, b_k); Dirichlet distribution:
        (K,)."""
        return self.posterior.weight_concentration.copy()

    @property
    def meanPrecision(self) -> np.ndarray:
        """β_k, shape (K,)."""
        return self.posterior.mean_precision.copy()

    @property
    def degreesOfFreedom(self) -> np.ndarray:
        """ν_k, shape (K,) (``tied``: one value, repeated)."""
        return self.posterior.dof.copy()

    @property
    def numFeatures(self) -> int:
        return int(self.posterior.means.shape[1])

    @property
    def hasSummary(self) -> bool:
        return self._summary is not None

    @property
    def summary(self) -> BayesianGaussianMixtureSummary:
        if self._summary is None:
            raise RuntimeError("no training summary is available for this model")
        return self._summary


    def scoringMixture(self) -> GaussianParameters:
        """The Gaussian mixture whose responsibilities are the posterior's: weights
        softmax(c_k), means m_k, covariances (ν_k W_k)⁻¹ (docs/bayesian.md)."""
        return self.posterior.mixture()[0]

    def _row(self, value: Vector | Sequence[float] | np.ndarray) -> np.ndarray:
        x = np.asarray(value.toArray() if isinstance(value, Vector) else value, dtype=float)
        if x.shape != (self.numFeatures,) or not np.all(np.isfinite(x)):
            raise ValueError(f"expected {self.numFeatures} finite feature values; got shape "
                             f"{x.shape}")
        return x[None, :]

    def predict(self, value: Vector | Sequence[float] | np.ndarray) -> int:
        """The most responsible component of one feature vector."""
        return int(e_step(self._row(value), self.scoringMixture())[2][0])

    def predictProbability(self, value: Vector | Sequence[float] | np.ndarray) -> DenseVector:
        """Responsibilities of every component for one feature vector."""
        return Vectors.dense(e_step(self._row(value), self.scoringMixture())[1][0])

    def sample(self, n: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` rows (grouped by component) and their components, drawn on the driver from
        the expected parameters (``weights``, ``means``, ``covariances``), as
        scikit-learn's ``sample``."""
        p = self.posterior
        expected = GaussianParameters.from_covariances(p.weights, p.means, p.covariances,
                                                       p.covariance_type)
        return sample_mixture(expected, n, np.random.default_rng(seed))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if self._scorer is None:
            self._scorer = GaussianMixtureModel(self.scoringMixture())
        scorer = self._scorer.copy()
        scorer._set(featuresCol=self.getFeaturesCol(), predictionCol=self.getPredictionCol(),
                    probabilityCol=self.getProbabilityCol())
        column = self._log_likelihood_col_or_none()
        if column is None:
            return scorer.transform(dataset)
        # log Σ_k ρ_nk is the scoring mixture's log density plus lse(c) (docs/bayesian.md).
        scored = scorer.setLogLikelihoodCol(column).transform(dataset)
        return scored.withColumn(column, F.col(f"`{column}`") + F.lit(self.posterior.mixture()[1]))

    def copy(self, extra: dict | None = None) -> BayesianGaussianMixtureModel:
        that = super().copy(extra)
        that._scorer = None
        return that

    def write(self) -> BayesianGaussianMixtureModelWriter:
        return BayesianGaussianMixtureModelWriter(self)

    def save(self, path: str) -> None:
        self.write().save(path)

    @classmethod
    def read(cls) -> BayesianGaussianMixtureModelReader:
        return BayesianGaussianMixtureModelReader(cls)

    @classmethod
    def load(cls, path: str) -> BayesianGaussianMixtureModel:
        return cls.read().load(path)


class BayesianGaussianMixtureModelWriter(OverwriteOnConnect, MLWriter):
    """Writes the params and summary as JSON metadata and one Parquet row per component."""

    def __init__(self, instance: BayesianGaussianMixtureModel) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        model = self.instance
        p, prior = model.posterior, model.prior
        k, d = p.means.shape
        extra = {"formatVersion": FORMAT_VERSION, "sparkGmmVersion": __version__, "k": k,
                 "numFeatures": d, "covarianceType": p.covariance_type,
                 "weightConcentrationPriorType": p.weight_type,
                 "prior": {"weightConcentration": prior.weight_concentration,
                           "meanPrecision": prior.mean_precision, "mean": prior.mean.tolist(),
                           "degreesOfFreedom": prior.dof,
                           "covariance": np.ravel(prior.covariance).tolist()},
                 "summary": model._summary.to_dict() if model._summary is not None else None}
        DefaultParamsWriter.saveMetadata(model, path, self.sparkSession, extraMetadata=extra)
        concentration = np.atleast_2d(p.weight_concentration)
        covariance_rows = covariance_of(p.covariance_type).rows(p.covariances, k)
        rows = [(j, concentration[:, j].tolist(), float(p.mean_precision[j]),
                 p.means[j].tolist(), float(p.dof[j]), covariance_rows[j].tolist())
                for j in range(k)]
        self.sparkSession.createDataFrame(rows, _DATA_SCHEMA).coalesce(1).write.parquet(
            os.path.join(path, "data"))


class BayesianGaussianMixtureModelReader(MLReader[BayesianGaussianMixtureModel]):
    """Reads a model saved by :class:`BayesianGaussianMixtureModelWriter`, checking every
    shape; nothing is unpickled or imported."""

    def __init__(self, cls: type[BayesianGaussianMixtureModel]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> BayesianGaussianMixtureModel:
        model = self.cls()
        metadata = _metadata(model, path, self.sparkSession)
        k, d = metadata.get("k"), metadata.get("numFeatures")
        kind, weight_type = metadata.get("covarianceType"), metadata.get(
            "weightConcentrationPriorType")
        if (not isinstance(k, int) or not isinstance(d, int) or k < 1 or d < 1
                or kind not in COVARIANCE_TYPES or weight_type not in WEIGHT_PRIOR_TYPES):
            raise ModelFormatError(f"{path!r} metadata has invalid k, numFeatures, "
                                   "covarianceType or weightConcentrationPriorType")
        try:
            rows = sorted(self.sparkSession.read.schema(_DATA_SCHEMA)
                          .parquet(os.path.join(path, "data")).collect())
            saved_prior = metadata["prior"]
        except Exception as error:
            raise ModelFormatError(f"cannot read the model under {path!r} "
                                   f"({cause_in_words(error)})") from error
        if [r.component for r in rows] != list(range(k)):
            raise ModelFormatError(f"{path!r}/data must hold components 0..{k - 1}")
        covariance = covariance_of(kind)
        width = covariance.rows(np.zeros(covariance.shape(k, d)), k).shape[1]
        sticks = 2 if weight_type == "dirichlet_process" else 1
        concentration = _shaped([r.weightConcentration for r in rows], (k, sticks), path,
                                "weight concentrations").T
        covariances = covariance.from_rows(_shaped([r.covariance for r in rows], (k, width),
                                                   path, "covariances"), k, d)
        model._posterior = VariationalParameters(
            kind, weight_type, concentration if sticks == 2 else concentration[0],
            np.array([r.meanPrecision for r in rows]),
            _shaped([r.mean for r in rows], (k, d), path, "means"),
            np.array([r.degreesOfFreedom for r in rows]), covariances,
            covariance.precision_cholesky(covariances))
        prior_shape = covariance.prior_scale(np.eye(d)).shape
        model._prior = VariationalPrior(
            weight_type, float(saved_prior["weightConcentration"]),
            float(saved_prior["meanPrecision"]),
            _shaped(saved_prior["mean"], (d,), path, "prior mean"),
            float(saved_prior["degreesOfFreedom"]),
            _shaped(saved_prior["covariance"], (int(np.prod(prior_shape)),), path,
                    "prior covariance").reshape(prior_shape))
        model._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(model, metadata)
        saved = metadata.get("summary")
        model._summary = BayesianGaussianMixtureSummary.from_dict(saved) if saved else None
        return model
