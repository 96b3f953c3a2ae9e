"""The EM loop, written once for any source of sufficient statistics.

The loop only needs a function that maps a list of mixtures to their statistics over the whole
data set: a numpy block on one machine (tests, the reference fit), or one statistics pass of a
fit's pass runner (:func:`pass_statistics`: resident Spark tasks holding their partitions, a
Spark job per pass, or a Spark Connect query). Several mixtures (``nInit`` restarts)
share every pass over the data.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import NonFiniteLikelihoodError
from ..kernels import ConjugatePrior, GaussianParameters, SufficientStatistics, log_prior, m_step
from ..runtime.passes import PassRunner
from ..runtime.requests import StatisticsRequest

logger = logging.getLogger(__name__)

# Each iteration is logged at DEBUG, each run's end at INFO, and while runs go on a progress
# line at INFO at most this often.
PROGRESS_SECONDS = 5.0

StatisticsFunction = Callable[[Sequence[GaussianParameters]], list[SufficientStatistics]]


def pass_statistics(runner: PassRunner) -> Callable[..., list[SufficientStatistics]]:
    """``statistics(models, hard_assignment=False, count_assignments=False)``: the merged
    statistics of every stored row for each model, one pass of ``runner``
    (:class:`~spark_gmm.runtime.requests.StatisticsRequest`). EM iterations leave
    ``count_assignments`` off: only the summary of the final model needs the cluster sizes.
    """
    def statistics(models: Sequence[GaussianParameters], hard_assignment: bool = False,
                   count_assignments: bool = False) -> list[SufficientStatistics]:
        return runner.run(StatisticsRequest(tuple(models), hard_assignment, count_assignments))

    return statistics


@dataclass(frozen=True)
class RunLimits:
    """A run's own regularisation, stopping rule and prior, when runs of one loop differ
    (``fitMultiple`` over maps of different ``regCovar``, ``maxIter``, ``tol`` or prior)."""

    reg_covar: float
    max_iter: int
    tol: float
    prior: ConjugatePrior | None = None  # MAP-EM: in the runs' (centred) coordinates


@dataclass
class EMRun:
    """State of one mixture being fitted.

    Attributes
    ----------
    params : GaussianParameters
        Current parameters (after the latest M-step).
    history : list of float
        The objective of each iteration, per unit of weight: the mean log-likelihood of the
        E-step's parameters, or with a prior their log posterior (log-likelihood plus
        :func:`~spark_gmm.kernels.log_prior`) divided by Σw.
    log_priors : list of float
        With a prior, the log prior density of each iteration's E-step parameters (empty
        without).
    iteration_seconds : list of float
        Wall time of each iteration (shared by the mixtures of one pass).
    """

    params: GaussianParameters
    history: list[float] = field(default_factory=list)
    iteration_seconds: list[float] = field(default_factory=list)
    converged: bool = False
    collapsed_events: int = 0
    limits: RunLimits | None = None  # None: the loop's own
    log_priors: list[float] = field(default_factory=list)

    @property
    def n_iter(self) -> int:
        return len(self.history)

    def mean_log_likelihoods(self, weight_sum: float) -> list[float]:
        """The mean log-likelihood of each iteration: :attr:`history` without the log prior
        (equal to it without a prior)."""
        if not self.log_priors:
            return list(self.history)
        return [h - p / weight_sum for h, p in zip(self.history, self.log_priors)]

    @property
    def final_mean_log_likelihood(self) -> float:
        return self.history[-1] if self.history else -math.inf


IterationCallback = Callable[[int, Sequence[EMRun]], None]


def run_em(
    runs: Sequence[EMRun],
    compute_statistics: StatisticsFunction,
    reg_covar: float,
    max_iter: int,
    tol: float,
    on_iteration: IterationCallback | None = None,
) -> Sequence[EMRun]:
    """Iterate E and M steps for every run until each converges or ``max_iter`` is reached.

    A run converges when the change of its mean per-row log-likelihood (with a prior: log
    posterior) between two iterations is below ``tol`` (as scikit-learn does); a run with its own
    :class:`RunLimits` uses those instead of ``reg_covar``, ``max_iter`` and ``tol``. Runs
    may already carry history (resumed from a checkpoint); they continue from their
    iteration count.

    Raises
    ------
    NonFiniteLikelihoodError
        The log-likelihood is not finite (data far outside the model's support).
    """
    shared = RunLimits(reg_covar, max_iter, tol)

    def limits(run: EMRun) -> RunLimits:
        return run.limits or shared

    for run in runs:
        if len(run.history) >= 2 and abs(run.history[-1] - run.history[-2]) < limits(run).tol:
            run.converged = True
    # Lines name a run by its place in ``runs`` (the restart, or the model and restart of a
    # fitMultiple), whichever runs are still active.
    number = {id(run): i for i, run in enumerate(runs)}
    last_progress = time.perf_counter()
    while True:
        active = [r for r in runs if not r.converged and r.n_iter < limits(r).max_iter]
        if not active:
            return runs
        started = time.perf_counter()
        all_stats = compute_statistics([r.params for r in active])
        seconds = time.perf_counter() - started
        for run, stats in zip(active, all_stats):
            mean_ll = stats.mean_log_likelihood
            if not math.isfinite(mean_ll):
                raise NonFiniteLikelihoodError(
                    f"the log-likelihood became {mean_ll} at iteration {run.n_iter + 1}; "
                    "check the features for extreme values, standardise them, or increase "
                    "regCovar"
                )
            prior = limits(run).prior
            if prior is not None:  # MAP-EM: the objective is the log posterior
                run.log_priors.append(log_prior(run.params, prior))
                mean_ll += run.log_priors[-1] / stats.weight_sum
            run.params, collapsed = m_step(stats, run.params.covariance_type,
                                           limits(run).reg_covar, prior,
                                           run.params.noise_log_volume)
            run.collapsed_events += len(collapsed)
            change = mean_ll - run.history[-1] if run.history else math.inf
            run.history.append(mean_ll)
            run.iteration_seconds.append(time.perf_counter() - started)
            run.converged = abs(change) < limits(run).tol
            logger.debug(
                "EM iteration %d (run %d of %d): log-likelihood %.6f, mean %.8f, change %.3e, "
                "%.3f s", run.n_iter, number[id(run)], len(runs), stats.log_likelihood,
                mean_ll, change, seconds,
            )
            if run.converged or run.n_iter >= limits(run).max_iter:
                logger.info(
                    "EM run %d of %d: %s after %d iterations, mean %s %.8f, %.2f s",
                    number[id(run)], len(runs),
                    "converged" if run.converged else "stopped at maxIter", run.n_iter,
                    "log posterior" if prior is not None else "log-likelihood", mean_ll,
                    sum(run.iteration_seconds),
                )
        if time.perf_counter() - last_progress >= PROGRESS_SECONDS:
            last_progress = time.perf_counter()
            still = [r for r in runs if not r.converged and r.n_iter < limits(r).max_iter]
            logger.info(
                "EM: iteration %d, %d of %d runs still running, best mean log-likelihood "
                "%.8f", max(r.n_iter for r in active), len(still), len(runs),
                best_run(runs).final_mean_log_likelihood,
            )
        if on_iteration is not None:
            on_iteration(max(r.n_iter for r in active), runs)


def best_run(runs: Sequence[EMRun]) -> EMRun:
    """The run with the highest final objective (mean log-likelihood, or log posterior with a
    prior; first one on ties)."""
    return max(runs, key=lambda r: r.final_mean_log_likelihood)
