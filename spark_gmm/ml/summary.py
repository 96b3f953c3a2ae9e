"""The training summary of a fitted model (MLlib's names where MLlib has the quantity)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..fit.driver import FitResult
from ..kernels import n_free_parameters


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
    residentPasses, jobPasses : int
        Passes over the data (initialisation, EM iterations, final statistics) served by
        resident tasks and run as Spark jobs of their own.
    phaseSeconds : dict
        Seconds spent ``storing`` the rows (the first pass), in ``initialisation`` and in
        ``em`` (iterations and the final statistics pass).
    storedBytes : int
        Bytes of row blocks the fit kept on the executors' local disks while it ran.
    entropy : float or None
        Σ_n w_n (−Σ_k γ_nk log γ_nk) of the final model on the training rows (for ICL);
        None for models saved before it was recorded.
    restartLogLikelihoodHistories : list of list of float
        Total log-likelihood at each iteration of every restart (``nInit`` lists, the
        chosen one included); empty for models saved before it was recorded.
    passSeconds : dict
        On Spark Connect: seconds of the passes as the client waited for them (``wall``),
        the tasks' reading and folding of their blocks summed over tasks (``task_fold``) and
        the client's decoding and merging of the answers (``client_merge``). Empty in a
        classic session.
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
    residentPasses: int = 0
    jobPasses: int = 0
    phaseSeconds: dict[str, float] = field(default_factory=dict)
    storedBytes: int = 0
    entropy: float | None = None
    restartLogLikelihoodHistories: list[list[float]] = field(default_factory=list)
    passSeconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_fit(cls, result: FitResult) -> GaussianMixtureSummary:
        run, final = result.best, result.final
        return cls(
            logLikelihood=final.log_likelihood,
            logLikelihoodHistory=[m * final.weight_sum for m in run.history],
            numIter=run.n_iter,
            converged=run.converged,
            clusterSizes=[int(c) for c in final.assigned],
            weightSum=final.weight_sum,
            numFeatures=result.counts.n_features,
            covarianceType=run.params.covariance_type,
            iterationSeconds=list(run.iteration_seconds),
            residentPasses=result.resident_passes,
            jobPasses=result.job_passes,
            phaseSeconds=dict(result.phase_seconds),
            storedBytes=result.stored_bytes,
            entropy=final.entropy,
            restartLogLikelihoodHistories=[[m * final.weight_sum for m in history]
                                           for history in result.restart_histories],
            passSeconds=dict(result.pass_seconds),
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

    @property
    def icl(self) -> float | None:
        """Integrated completed likelihood, BIC + 2 × the responsibilities' entropy (lower
        is better; Biernacki et al. 2000): BIC that also penalises overlapping components."""
        return None if self.entropy is None else self.bic + 2.0 * self.entropy

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
            "residentPasses": self.residentPasses,
            "jobPasses": self.jobPasses,
            "phaseSeconds": self.phaseSeconds,
            "storedBytes": self.storedBytes,
            "entropy": self.entropy,
            "restartLogLikelihoodHistories": self.restartLogLikelihoodHistories,
            "passSeconds": self.passSeconds,
        }
