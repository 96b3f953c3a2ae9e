"""What a fit found, and how it ran, kept apart.

:class:`GaussianMixtureSummary` is the training summary, persisted with the model: every
member of MLlib's ``GaussianMixtureSummary`` (``predictions``, ``cluster``, ``probability``,
``featuresCol``, ``predictionCol``, ``probabilityCol``, ``k``, ``clusterSizes``,
``logLikelihood``, ``numIter``) with MLlib's meaning, plus the history, the information
criteria and the entropy. :class:`FitRunRecord` is the run's telemetry (passes, bytes,
seconds): a fitted model's ``runRecord``, never saved with the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from pyspark.sql import DataFrame

from ..fit.driver import FitResult
from ..fit.variational import VariationalResult
from ..kernels import log_prior, n_free_parameters

# Keys of saved summaries that are read back; older models saved telemetry too (passes,
# bytes, seconds), which loading leaves out.
_PERSISTED = ("logLikelihood", "logLikelihoodHistory", "numIter", "converged", "clusterSizes",
              "weightSum", "numFeatures", "covarianceType", "entropy",
              "restartLogLikelihoodHistories", "prior", "logPosterior", "logPosteriorHistory",
              "noiseSize")


class _Predictions:
    # The training rows transformed by the fitted model, made on first use and kept.
    def __init__(self, transform: Callable[[], DataFrame] | None) -> None:
        self._transform = transform
        self._frame: DataFrame | None = None

    def get(self) -> DataFrame:
        if self._transform is None:
            raise RuntimeError(
                "predictions are available on the summary of a model fitted in this session "
                "only, not of a loaded one; use model.transform(dataset)")
        if self._frame is None:
            self._frame = self._transform()
        return self._frame


@dataclass(frozen=True)
class GaussianMixtureSummary:
    """Training summary: MLlib's ``GaussianMixtureSummary`` members with MLlib's meaning,
    plus the history, the information criteria and the entropy.

    Attributes
    ----------
    logLikelihood : float
        Total (weighted) log-likelihood of the final model on the training data (with a
        prior: at the MAP estimate; BIC, AIC and ICL use it, as mclust does).
    logLikelihoodHistory : list of float
        Total log-likelihood at each EM iteration's E-step.
    numIter : int
    converged : bool
    clusterSizes : list of int
        Training rows per component (argmax responsibility; the Gaussians only).
    weightSum : float
        Σ w (the row count when unweighted).
    numFeatures : int
    covarianceType : str
    entropy : float or None
        Σ_n w_n (−Σ_k γ_nk log γ_nk) of the final model on the training rows (for ICL);
        None for models saved before it was recorded.
    restartLogLikelihoodHistories : list of list of float
        Total log-likelihood at each iteration of every restart (``nInit`` lists, the
        chosen one included); empty for models saved before it was recorded.
    prior : str
        ``none`` or ``conjugate`` (MAP-EM); ``none`` for models saved before priors.
    logPosterior : float or None
        With a prior: ``logLikelihood`` plus the log prior density of the final means and
        covariances (normalised; the weights' flat prior and the evidence left out,
        docs/bayesian.md), the quantity MAP-EM increases; None without.
    logPosteriorHistory : list of float
        With a prior: the log posterior at each iteration's E-step parameters, never
        decreasing with ``regCovar=0``; empty without.
    noiseSize : int or None
        With a noise component: the training rows whose most likely component is the
        noise (prediction −1); None without one.
    featuresCol, predictionCol, probabilityCol : str
        The model's column names when it was fitted (loaded: as saved).
    """

    logLikelihood: float
    logLikelihoodHistory: list[float]
    numIter: int
    converged: bool
    clusterSizes: list[int]
    weightSum: float
    numFeatures: int
    covarianceType: str
    entropy: float | None = None
    restartLogLikelihoodHistories: list[list[float]] = field(default_factory=list)
    prior: str = "none"
    logPosterior: float | None = None
    logPosteriorHistory: list[float] = field(default_factory=list)
    noiseSize: int | None = None
    featuresCol: str = "features"
    predictionCol: str = "prediction"
    probabilityCol: str = "probability"
    _predictions: _Predictions = field(default_factory=lambda: _Predictions(None),
                                       repr=False, compare=False)

    @classmethod
    def from_fit(cls, result: FitResult, columns: tuple[str, str, str],
                 predictions: Callable[[], DataFrame] | None = None
                 ) -> GaussianMixtureSummary:
        """The summary of ``result``; ``columns`` are (features, prediction, probability)
        and ``predictions`` makes the training rows transformed by the fitted model."""
        run, final = result.best, result.final
        prior = run.limits.prior if run.limits is not None else None
        sizes = [int(c) for c in final.assigned]
        noise_size = sizes.pop() if run.params.has_noise else None
        return cls(
            logLikelihood=final.log_likelihood,
            logLikelihoodHistory=[m * final.weight_sum
                                  for m in run.mean_log_likelihoods(final.weight_sum)],
            numIter=run.n_iter,
            converged=run.converged,
            clusterSizes=sizes,
            weightSum=final.weight_sum,
            numFeatures=result.counts.n_features,
            covarianceType=run.params.covariance_type,
            entropy=final.entropy,
            restartLogLikelihoodHistories=[[m * final.weight_sum for m in history]
                                           for history in result.restart_histories],
            prior="none" if prior is None else "conjugate",
            logPosterior=(None if prior is None
                          else final.log_likelihood + log_prior(run.params, prior)),
            logPosteriorHistory=([] if prior is None
                                 else [m * final.weight_sum for m in run.history]),
            noiseSize=noise_size,
            featuresCol=columns[0], predictionCol=columns[1], probabilityCol=columns[2],
            _predictions=_Predictions(predictions),
        )

    @classmethod
    def from_dict(cls, saved: dict[str, Any], columns: tuple[str, str, str]
                  ) -> GaussianMixtureSummary:
        """A saved summary (of this or an earlier format) with the model's columns."""
        return cls(**{k: v for k, v in saved.items() if k in _PERSISTED},
                   featuresCol=columns[0], predictionCol=columns[1], probabilityCol=columns[2])

    @property
    def predictions(self) -> DataFrame:
        """The training rows transformed by the fitted model (made on first use).

        Raises
        ------
        RuntimeError
            On the summary of a loaded model, which has no training rows.
        """
        return self._predictions.get()

    @property
    def cluster(self) -> DataFrame:
        """The predicted component of each training row: ``predictions[predictionCol]``."""
        return self.predictions.select(self.predictionCol)

    @property
    def probability(self) -> DataFrame:
        """Each training row's responsibilities: ``predictions[probabilityCol]``."""
        return self.predictions.select(self.probabilityCol)

    @property
    def k(self) -> int:
        """Number of components the model was fitted with."""
        return len(self.clusterSizes)

    @property
    def numParameters(self) -> int:
        return n_free_parameters(self.covarianceType, self.k, self.numFeatures,
                                 noise=self.noiseSize is not None)

    @property
    def bic(self) -> float:
        """Bayesian information criterion, -2 log L + p log N (lower is better)."""
        return -2.0 * self.logLikelihood + self.numParameters * math.log(self.weightSum)

    @property
    def aic(self) -> float:
        """Akaike information criterion, -2 log L + 2 p (lower is better)."""
        return -2.0 * self.logLikelihood + 2.0 * self.numParameters

    @property
    def icl(self) -> float | None:
        """Integrated completed likelihood, BIC + 2 × the responsibilities' entropy (lower
        is better; Biernacki et al. 2000): BIC that also penalises overlapping components."""
        return None if self.entropy is None else self.bic + 2.0 * self.entropy

    def to_dict(self) -> dict[str, Any]:
        """The persisted members (the columns are the model's params)."""
        return {name: getattr(self, name) for name in _PERSISTED}


@dataclass(frozen=True)
class FitRunRecord:
    """How the fit ran: a fitted model's ``runRecord``, not saved with the model (of a
    ``BayesianGaussianMixture`` too: its iterations are the variational ones, its ``em``
    phase their seconds).

    Attributes
    ----------
    iterationSeconds : list of float
        Wall time of each EM iteration (shared by the models of one pass).
    residentPasses, jobPasses : int
        Passes over the data (initialisation, EM iterations, final statistics) served by
        resident tasks and run as Spark jobs of their own.
    phaseSeconds : dict
        Seconds spent ``storing`` the rows (the first pass), in ``initialisation`` and in
        ``em`` (iterations and the final statistics pass); the models of one
        ``fitMultiple`` report the phases they shared.
    storedBytes : int
        Bytes of row blocks the fit kept on the executors' local disks while it ran.
    passSeconds : dict
        On Spark Connect: seconds of the passes as the client waited for them (``wall``),
        the tasks' reading and folding of their blocks summed over tasks (``task_fold``) and
        the client's decoding and merging of the answers (``client_merge``). Empty in a
        classic session.
    balance : dict
        How the rows were spread over the tasks (docs/performance.md, "Balance"):
        ``partitionRows`` (rows per input partition, as the first pass found them),
        ``storedPartitionRows`` (per stored partition, after a rebalance when
        ``rebalanced`` is true) and ``taskRows`` (rows each task of the last pass held).
    """

    iterationSeconds: list[float] = field(default_factory=list)
    residentPasses: int = 0
    jobPasses: int = 0
    phaseSeconds: dict[str, float] = field(default_factory=dict)
    storedBytes: int = 0
    passSeconds: dict[str, float] = field(default_factory=dict)
    balance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_fit(cls, result: FitResult | VariationalResult) -> FitRunRecord:
        telemetry = result.telemetry
        return cls(
            iterationSeconds=list(result.best.iteration_seconds),
            residentPasses=telemetry.resident_passes,
            jobPasses=telemetry.job_passes,
            phaseSeconds=dict(telemetry.phase_seconds),
            storedBytes=telemetry.stored_bytes,
            passSeconds=dict(telemetry.pass_seconds),
            balance=dict(telemetry.balance),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
