"""Variational Bayes on the driver: the loop over statistics passes, the priors' defaults,
and the fit of a ``BayesianGaussianMixture`` on the stored rows.

Each iteration is one statistics pass of the mixture equivalent to the current posterior's
E-step (:meth:`~spark_gmm.kernels.variational.VariationalParameters.mixture`) — the pass of
EM, served by whichever runner the fit has (resident tasks, a Spark job per pass, Spark
Connect) — then the variational M-step and scikit-learn's lower bound on the driver. The
loop is scikit-learn's: E-step, M-step, lower bound from the E-step's responsibilities and
the new posterior; stop when the lower bound changes by less than ``tol``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import DataFrame

from ..errors import InvalidInputError, NonFiniteLikelihoodError
from ..kernels import GaussianParameters, SufficientStatistics
from ..kernels.variational import (
    WEIGHT_PRIOR_TYPES,
    VariationalParameters,
    VariationalPrior,
    lower_bound,
    variational_m_step,
)
from ..runtime.input_checks import InputCounts
from ..runtime.progress import phase
from ..runtime.runners import pass_runner
from ..runtime.scheduler_state import running_fit
from .driver import FitSettings, FitTelemetry, _rebalanced_store, _store, _validated
from .em import pass_statistics
from .initialization import InitialisationInput, from_initial_model, initial_mixtures
from .prior import PriorSettings, resolve_priors

logger = logging.getLogger(__name__)

StatisticsFunction = Callable[[Sequence[GaussianParameters]], list[SufficientStatistics]]


@dataclass(frozen=True)
class VariationalSettings:
    """The Bayesian estimator's params: the fit's (``fit``) and the priors' (None: default).

    Attributes
    ----------
    weight_type : str
        ``dirichlet_process`` or ``dirichlet_distribution``.
    weight_concentration : float or None
        α₀; None: 1/k.
    mean_precision : float
        β₀.
    mean : tuple of float or None
        m₀ [D]; None: the weighted mean of the rows.
    dof : float or None
        ν₀; None: D.
    covariance : tuple of float or None
        Ψ₀ as 1 value (× identity), D (a diagonal) or D × D (row-major); None: the rows'
        unbiased covariance (``diag``: its diagonal, ``spherical``: its mean diagonal).
    """

    fit: FitSettings
    weight_type: str = "dirichlet_process"
    weight_concentration: float | None = None
    mean_precision: float = 1.0
    mean: tuple[float, ...] | None = None
    dof: float | None = None
    covariance: tuple[float, ...] | None = None


@dataclass
class VariationalRun:
    """One restart: its posterior, the lower bound after each iteration and each
    iteration's wall time (its pass, M-step and lower bound; shared by the runs of a pass)."""

    posterior: VariationalParameters
    lower_bounds: list[float] = field(default_factory=list)
    converged: bool = False
    iteration_seconds: list[float] = field(default_factory=list)

    @property
    def n_iter(self) -> int:
        return len(self.lower_bounds)


def run_variational(runs: Sequence[VariationalRun], statistics: StatisticsFunction,
                    prior: VariationalPrior, reg_covar: float, max_iter: int, tol: float
                    ) -> Sequence[VariationalRun]:
    """Iterate every run until its lower bound changes by less than ``tol`` or it reaches
    ``max_iter`` iterations; the runs still going share each pass.

    Raises
    ------
    NonFiniteLikelihoodError
        The lower bound is not finite.
    """
    while active := [r for r in runs if not r.converged and r.n_iter < max_iter]:
        started = time.perf_counter()
        used = [r.posterior.mixture() for r in active]
        for run, (mixture, lse), stats in zip(active, used, statistics([m for m, _ in used])):
            run.posterior = variational_m_step(stats, mixture.covariance_type, prior, reg_covar)
            bound = lower_bound(stats, mixture, lse, run.posterior)
            if not math.isfinite(bound):
                raise NonFiniteLikelihoodError(
                    f"the lower bound became {bound} at iteration {run.n_iter + 1}; check the "
                    "features for extreme values, standardise them, or increase regCovar")
            previous = run.lower_bounds[-1] if run.lower_bounds else -math.inf
            run.lower_bounds.append(bound)
            run.iteration_seconds.append(time.perf_counter() - started)
            run.converged = abs(bound - previous) < tol
            logger.debug("VB iteration %d: lower bound %.10g, change %.3e", run.n_iter, bound,
                         bound - previous)
    return runs


def start_runs(starts: Sequence[GaussianParameters], statistics: StatisticsFunction,
               prior: VariationalPrior, reg_covar: float) -> list[VariationalRun]:
    """One pass computes each start mixture's responsibilities; one variational M-step
    from them is each run's first posterior (scikit-learn's ``_initialize(X, resp)``)."""
    return [VariationalRun(variational_m_step(stats, start.covariance_type, prior, reg_covar))
            for start, stats in zip(starts, statistics(list(starts)))]


def resolve_variational_prior(settings: VariationalSettings, moments_mean: np.ndarray,
                              resolve: Callable[[PriorSettings], object], d: int
                              ) -> VariationalPrior:
    """The priors with scikit-learn's defaults; ``resolve`` turns normal-inverse-Wishart
    settings into a :class:`~spark_gmm.kernels.ConjugatePrior` (mean and scale: the data's
    when unset, in the fit's coordinates)."""
    if settings.weight_type not in WEIGHT_PRIOR_TYPES:
        raise InvalidInputError(f"weightConcentrationPriorType must be one of "
                                f"{', '.join(WEIGHT_PRIOR_TYPES)}; got {settings.weight_type!r}")
    dof = float(d) if settings.dof is None else settings.dof
    if not dof > d - 1:
        raise InvalidInputError(f"degreesOfFreedomPrior must be > D − 1 = {d - 1}; got {dof:g}")
    try:
        conjugate = resolve(PriorSettings(settings.mean, settings.mean_precision, dof,
                                          settings.covariance))
    except InvalidInputError as error:
        words = str(error)
        for old, new in (("priorMean", "meanPrior"), ("priorScale", "covariancePrior"),
                         ("prior scale", "covariance prior")):
            words = words.replace(old, new)
        raise InvalidInputError(words) from None
    k = settings.fit.k
    alpha = 1.0 / k if settings.weight_concentration is None else settings.weight_concentration
    return VariationalPrior(settings.weight_type, alpha, settings.mean_precision,
                            conjugate.mean, dof, conjugate.scale)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class VariationalResult:
    """A Bayesian fit: the best restart (centred at ``center``), its prior, the rows, and
    how the fit ran (``telemetry``: phases ``storing``, ``initialisation``, ``em`` — the
    variational iterations)."""

    best: VariationalRun
    prior: VariationalPrior
    center: np.ndarray
    counts: InputCounts
    restart_lower_bounds: list[list[float]]
    telemetry: FitTelemetry = field(default_factory=FitTelemetry)

    @property
    def posterior(self) -> VariationalParameters:
        """The fitted posterior in the features' coordinates."""
        return self.best.posterior.shifted(self.center)


def fit_variational(dataset: DataFrame, settings: VariationalSettings,
                    initial: GaussianParameters | None = None) -> VariationalResult:
    """Fit a Bayesian mixture to ``dataset``: store the rows as EM does (again, evenly, when
    they are skewed and ``settings.fit.balance_rows``), resolve the priors,
    start from ``initial``'s responsibilities (original coordinates) or from
    ``settings.fit.init_mode``'s mixtures' (``n_init`` restarts sharing each pass), and
    iterate (:func:`run_variational`); the restart with the highest final lower bound wins.

    Raises
    ------
    InvalidInputError
        Bad rows, weights or parameters; raised before any iteration.
    """
    fit = settings.fit
    with running_fit():
        store = _store(dataset, fit)
        try:
            with phase("storing and checking the rows", logger) as storing:
                counts, moments = _validated(store, fit)
                found = store.partition_rows
                rebalanced = _rebalanced_store(dataset, store, fit)  # skewed: stored again
                if rebalanced is not None:
                    store = rebalanced
                    counts, moments = _validated(store, fit)
            center = moments.mean
            runner = pass_runner(store, center, fit.depth, (1, fit.n_init * fit.k))
            statistics = pass_statistics(runner)
            d = counts.n_features
            with runner:
                prior = resolve_variational_prior(
                    settings, moments.mean, lambda p: resolve_priors(
                        [p], [1], [fit.covariance_type], moments, counts.n_rows, center,
                        statistics)[0], d)
                with phase("initialisation", logger) as initialising:
                    if initial is not None:
                        starts = [from_initial_model(initial, fit.k, d, fit.covariance_type,
                                                     center)]
                    else:
                        starts = initial_mixtures(InitialisationInput(
                            center, moments.variance, runner, fit.k, fit.covariance_type,
                            fit.reg_covar, fit.seed % (2**31), fit.n_init), fit.init_mode)
                    runs = start_runs(starts, statistics, prior, fit.reg_covar)
                with phase("variational iterations", logger) as iterating:
                    run_variational(runs, statistics, prior, fit.reg_covar, fit.max_iter,
                                    fit.tol)
            counters = runner.counters
            telemetry = FitTelemetry(
                counters.resident_passes, counters.job_passes,
                {"storing": storing.seconds, "initialisation": initialising.seconds,
                 "em": iterating.seconds},
                8 * counts.n_rows * (counts.n_features + bool(fit.weight_col)),
                dict(counters.pass_seconds),
                {"partitionRows": found, "storedPartitionRows": store.partition_rows,
                 "rebalanced": rebalanced is not None, "taskRows": list(counters.task_rows)})
        finally:
            store.close()
    best = max(runs, key=lambda r: r.lower_bounds[-1] if r.lower_bounds else -math.inf)
    logger.info("variational fit: %d components, lower bound %.8g after %d iterations "
                "(converged: %s)", fit.k, best.lower_bounds[-1], best.n_iter, best.converged)
    return VariationalResult(best, prior.shifted(center), center, counts,
                             [list(r.lower_bounds) for r in runs], telemetry)
