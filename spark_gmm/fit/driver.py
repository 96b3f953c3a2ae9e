"""Fits on the driver: store the rows, validate, start, iterate, summarise.

:func:`fit_mixtures` is the one fit path: ``GaussianMixture.fit`` runs it with one settings
(:func:`fit_mixture`), ``fitMultiple`` with the settings of every map that can share the
passes. Each phase logs its duration as it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import DataFrame

from ..errors import InvalidInputError
from ..kernels import ConjugatePrior, FeatureMoments, GaussianParameters, SufficientStatistics
from ..runtime.balance import rebalance_partitions, rows_in_words, spread
from ..runtime.block_store import BlockStore
from ..runtime.connect import ConnectStore, default_parallelism, is_connect, store_on_connect
from ..runtime.ingest import (
    check_weight_column,
    feature_moments,
    features_array,
    store_blocks,
    stored_input_counts,
)
from ..runtime.input_checks import InputCounts
from ..runtime.passes import PassRunner
from ..runtime.progress import PhaseTiming, phase
from ..runtime.runners import pass_runner
from ..runtime.scheduler_state import executor_hosts, running_fit, slot_count
from .checkpoint import read_checkpoint, remove_checkpoint, write_checkpoint
from .em import EMRun, RunLimits, best_run, pass_statistics, run_em
from .initialization import (
    InitialisationInput,
    from_initial_model,
    initial_mixtures_together,
)
from .noise import NoiseSettings, starting_mixture
from .prior import PriorSettings, resolve_priors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """The estimator's params, snake_case, as the fit uses them."""

    features_col: str
    weight_col: str | None
    k: int
    covariance_type: str
    max_iter: int
    tol: float
    reg_covar: float
    init_mode: str
    n_init: int
    seed: int
    depth: int
    checkpoint_path: str | None
    prior: PriorSettings | None = None  # None: maximum likelihood
    noise: NoiseSettings | None = None  # None: no uniform noise component (.noise)
    marginalize: bool = False  # missing features (NaN) marginalised, not invalid
    balance_rows: bool = True  # spread the stored rows over the task slots (.balance)


@dataclass(frozen=True)
class FitTelemetry:
    """How a fit ran (not what it fitted), shared by every model of one fit.

    Attributes
    ----------
    resident_passes, job_passes : int
        Passes over the stored rows served by resident tasks, and run as Spark jobs.
    phase_seconds : dict
        Seconds of ``storing`` (the first pass: write, count, moments), ``initialisation``
        (0 when resumed from a checkpoint) and ``em`` (the iterations and the final pass).
    stored_bytes : int
        Bytes of block files the fit kept on the executors' local disks (8 per value: the
        features, and the weight when there is a weight column).
    pass_seconds : dict
        On Spark Connect, where the passes' time went (``wall``, ``task_fold``,
        ``client_merge``, see :class:`~spark_gmm.runtime.connect.ConnectPassRunner`);
        empty in a classic session.
    balance : dict
        How the rows were spread (:mod:`spark_gmm.runtime.balance`): ``partitionRows`` as
        the input's partitions held them, ``storedPartitionRows`` as stored (after a
        rebalance, when ``rebalanced``), ``taskRows`` held by each task of the last pass.
    """

    resident_passes: int = 0
    job_passes: int = 0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    stored_bytes: int = 0
    pass_seconds: dict[str, float] = field(default_factory=dict)
    balance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FitResult:
    """What a fit produced for one settings.

    Attributes
    ----------
    best : EMRun
        The winning restart; its parameters are centred at ``center``.
    final : SufficientStatistics
        Statistics of the final model over every row, cluster sizes included.
    center : ndarray of shape (D,)
    counts : InputCounts
    restart_histories : list of list of float
        Every restart's mean log-likelihood per row at each iteration (the best one's too).
    telemetry : FitTelemetry
        The passes, bytes and seconds of the fit (of all its models when they shared it).
    bounds : (ndarray of shape (D,), ndarray of shape (D,)) or None
        The training rows' bounding box (per-feature minimum and maximum).
    """

    best: EMRun
    final: SufficientStatistics
    center: np.ndarray
    counts: InputCounts
    restart_histories: list[list[float]] = field(default_factory=list)
    telemetry: FitTelemetry = field(default_factory=FitTelemetry)
    bounds: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def parameters(self) -> GaussianParameters:
        """The fitted mixture in the original feature coordinates."""
        return self.best.params.shifted(self.center)


def _fingerprint(settings: FitSettings, has_initial_model: bool) -> dict[str, Any]:
    # The parameters that must match for a checkpoint to belong to this fit.
    return {
        "k": settings.k, "covarianceType": settings.covariance_type,
        "regCovar": settings.reg_covar, "initMode": settings.init_mode,
        "nInit": settings.n_init, "seed": settings.seed,
        "initialModel": has_initial_model,
    } | ({"prior": settings.prior.to_dict()} if settings.prior is not None else {}) | (
        {"noise": settings.noise.to_dict()} if settings.noise is not None else {})


def _data_fingerprint(dataset: DataFrame, settings: FitSettings, counts: InputCounts,
                      moments: FeatureMoments) -> dict[str, Any]:
    # The data a checkpoint was written for: what the first pass computes anyway.
    column = dataset.schema[settings.features_col].dataType.simpleString()
    return {
        "rows": counts.n_rows, "features": counts.n_features, "weightSum": counts.weight_sum,
        "featuresColumn": f"{settings.features_col}: {column}",
        "weightColumn": settings.weight_col or "",
        "featureMeans": moments.mean.tolist(), "featureVariances": moments.variance.tolist(),
    }


def _initialisation_input(settings: FitSettings, moments: FeatureMoments, center: np.ndarray,
                          runner: PassRunner, prior: ConjugatePrior | None
                          ) -> InitialisationInput:
    return InitialisationInput(
        center=center, variance=moments.variance, runner=runner, k=settings.k,
        covariance_type=settings.covariance_type, reg_covar=settings.reg_covar,
        seed=settings.seed % (2**31), n_init=settings.n_init, prior=prior,
    )


def _limits(settings: FitSettings, prior: ConjugatePrior | None) -> RunLimits:
    return RunLimits(settings.reg_covar, settings.max_iter, settings.tol, prior)


def _starts(all_settings: Sequence[FitSettings],
            initials: Sequence[GaussianParameters | None], moments: FeatureMoments,
            center: np.ndarray, runner: PassRunner, n_features: int,
            priors: Sequence[ConjugatePrior | None]) -> list[list[EMRun]]:
    # Every fit's restarts; the fits without an initial model share each pass.
    drawn = [i for i, initial in enumerate(initials) if initial is None]
    mixtures = iter(initial_mixtures_together(
        [_initialisation_input(all_settings[i], moments, center, runner, priors[i])
         for i in drawn],
        [all_settings[i].init_mode for i in drawn]) if drawn else [])
    starts = []
    for s, initial, prior in zip(all_settings, initials, priors):
        restarts = (next(mixtures) if initial is None else
                    [from_initial_model(initial, s.k, n_features, s.covariance_type, center)])
        starts.append([EMRun(starting_mixture(p, s.noise, moments), limits=_limits(s, prior))
                       for p in restarts])
    return starts


def _store(dataset: DataFrame, settings: FitSettings, partitions: int | None = None
           ) -> BlockStore | ConnectStore:
    # Executor-local files and resident tasks in a classic session; blocks kept on the
    # server and one query per pass on Spark Connect (no SparkContext there). With
    # ``partitions``: the rows spread evenly over that many partitions first.
    check_weight_column(dataset, settings.weight_col)
    features = features_array(dataset, settings.features_col)
    if is_connect(dataset):
        return store_on_connect(dataset, features, settings.weight_col, partitions,
                                settings.balance_rows)
    return store_blocks(dataset, features, settings.weight_col, partitions,
                        settings.balance_rows)


def _rebalanced_store(dataset: DataFrame, store: BlockStore | ConnectStore,
                      settings: FitSettings) -> BlockStore | ConnectStore | None:
    # The rows stored again evenly when the first pass found them skewed across hosts
    # (Connect: across partitions; see runtime/balance.py), or None. Logs what it found.
    found = store.partition_rows
    logger.info("the input's %d partitions hold %s rows (the largest %.2fx the mean)",
                len(found), rows_in_words(found), spread(found))
    if not settings.balance_rows:
        return None
    if isinstance(store, ConnectStore):
        n_hosts, parallelism = None, default_parallelism(dataset.sparkSession)
    else:
        sc = store.handles.context
        n_hosts, parallelism = executor_hosts(sc), slot_count(sc) or sc.defaultParallelism
    partitions = rebalance_partitions([store.locations[p] for p in sorted(store.locations)],
                                      n_hosts, parallelism)
    if partitions is None:
        return None
    logger.info("rebalancing: the rows are stored again in %d even partitions (one more "
                "read of the input and a shuffle, once)", partitions)
    store.close()
    return _store(dataset, settings, partitions)


def _validated(store: BlockStore | ConnectStore, settings: FitSettings
               ) -> tuple[InputCounts, FeatureMoments]:
    partitions = store.stored_partitions()  # the first pass: files, counts, moments
    counts = stored_input_counts(partitions, settings.features_col, settings.weight_col,
                                 settings.marginalize)
    if settings.k > counts.n_rows:
        raise InvalidInputError(
            f"k={settings.k} is larger than the number of rows ({counts.n_rows}); reduce k")
    return counts, feature_moments(partitions)


# Params in which the fits of one call may differ (everything else must match).
SHARED_FIT_VARIES = ("k", "covariance_type", "reg_covar", "seed", "init_mode", "n_init",
                     "max_iter", "tol", "prior", "noise")


def can_share(all_settings: Sequence[FitSettings]) -> bool:
    """Whether these fits can share their passes (:func:`fit_mixtures`): settings equal
    outside :data:`SHARED_FIT_VARIES`, and a checkpoint only for a lone fit."""
    fixed = [{k: v for k, v in asdict(s).items() if k not in SHARED_FIT_VARIES}
             for s in all_settings]
    return (bool(all_settings) and all(f == fixed[0] for f in fixed)
            and (len(all_settings) == 1 or not fixed[0]["checkpoint_path"]))


def fit_mixture(dataset: DataFrame, settings: FitSettings,
                initial: GaussianParameters | None = None) -> FitResult:
    """Fit a mixture to ``dataset[settings.features_col]`` by distributed EM: one fit is
    :func:`fit_mixtures` of one settings.

    Parameters
    ----------
    dataset : DataFrame
    settings : FitSettings
    initial : GaussianParameters or None
        Start EM here (original coordinates) instead of ``settings.init_mode``.

    Raises
    ------
    InvalidInputError
        Bad rows, weights or parameters; raised before any EM work.
    CheckpointMismatchError
        ``settings.checkpoint_path`` holds the state of another fit.
    """
    return fit_mixtures(dataset, [settings], [initial])[0]


def fit_mixtures(dataset: DataFrame, all_settings: Sequence[FitSettings],
                 initials: Sequence[GaussianParameters | None] | None = None
                 ) -> list[FitResult]:
    """Fits of one dataset in shared passes: one storing pass, initialisations that share
    each of their passes (:func:`initial_mixtures_together`), and every EM pass computing
    the statistics of all runs still going. Each result equals the one its settings'
    fit alone gives.

    Parameters
    ----------
    dataset : DataFrame
    all_settings : sequence of FitSettings
        Differing only in :data:`SHARED_FIT_VARIES` (:func:`can_share`); a checkpoint path
        only when there is one.
    initials : sequence of (GaussianParameters or None), optional
        Per settings, a mixture to start EM from (original coordinates) instead of its
        ``init_mode``.

    Raises
    ------
    ValueError
        Settings that cannot share their passes.
    InvalidInputError
        Bad rows, weights or parameters; raised before any EM work.
    CheckpointMismatchError
        The checkpoint path holds the state of another fit.
    """
    if not can_share(all_settings):
        raise ValueError("fits in shared passes may differ only in "
                         f"{', '.join(SHARED_FIT_VARIES)}, and only a lone fit may checkpoint")
    initials = list(initials) if initials is not None else [None] * len(all_settings)
    with running_fit():  # fits of this process started together share the task slots
        return _fit_mixtures(dataset, all_settings, initials)


def _labels(all_settings: Sequence[FitSettings], initials: Sequence[GaussianParameters | None]
            ) -> tuple[str, str]:
    # What the log calls the initialisation and the EM phases.
    if len(all_settings) > 1:
        n = len(all_settings)
        return (f"initialisation of {n} models sharing each pass",
                f"EM of {n} models in shared passes")
    settings = all_settings[0]
    return ("the initial model" if initials[0] is not None else
            f"initialisation ({settings.init_mode}, {settings.n_init} restart(s) sharing "
            "each pass)"), "EM"


def _fit_mixtures(dataset: DataFrame, all_settings: Sequence[FitSettings],
                  initials: Sequence[GaussianParameters | None]) -> list[FitResult]:
    for settings in all_settings:
        logger.debug("fit settings: %s", asdict(settings))
    first = all_settings[0]
    path = first.checkpoint_path
    store = _store(dataset, first)
    try:
        with phase("storing and checking the rows", logger) as storing:
            counts, moments = _validated(store, max(all_settings, key=lambda s: s.k))
            found = store.partition_rows
            rebalanced = _rebalanced_store(dataset, store, first)
            if rebalanced is not None:
                store = rebalanced
                counts, moments = _validated(store, max(all_settings, key=lambda s: s.k))
                logger.info("rebalanced: %d partitions of %s rows", store.n_partitions,
                            rows_in_words(store.partition_rows))
        fingerprints = (_fingerprint(first, initials[0] is not None),
                        _data_fingerprint(dataset, first, counts, moments))
        resumed = read_checkpoint(path, *fingerprints) if path else None
        center = resumed[0] if resumed is not None else moments.mean
        runner = pass_runner(store, center, first.depth,
                             (1, sum(s.n_init * s.k for s in all_settings)))
        statistics = pass_statistics(runner)
        initialising_label, iterating_label = _labels(all_settings, initials)
        # Initialisation and EM need no Spark job of their own: one resident job serves all.
        with runner:
            priors = resolve_priors([s.prior for s in all_settings],
                                    [s.k for s in all_settings],
                                    [s.covariance_type for s in all_settings], moments,
                                    counts.n_rows, center, statistics)
            initialising = PhaseTiming()
            if resumed is not None:
                starts = [resumed[1]]
                for run in starts[0]:
                    run.limits = _limits(first, priors[0])
            else:
                with phase(initialising_label, logger) as initialising:
                    starts = _starts(all_settings, initials, moments, center, runner,
                                     counts.n_features, priors)

            def save(_: int, runs: Sequence[EMRun]) -> None:
                if path:
                    write_checkpoint(path, fingerprints[0], center, runs, fingerprints[1])

            with phase(iterating_label, logger) as iterating:
                run_em([run for runs in starts for run in runs], statistics, first.reg_covar,
                       first.max_iter, first.tol, on_iteration=save)
                bests = [best_run(runs) for runs in starts]
                finals = statistics([best.params for best in bests], count_assignments=True)
        logger.info("passes over the data: %d by resident tasks, %d as Spark jobs; the last "
                    "one's tasks held %s rows", runner.counters.resident_passes,
                    runner.counters.job_passes, rows_in_words(runner.counters.task_rows))
        balance = {"partitionRows": found, "storedPartitionRows": store.partition_rows,
                   "rebalanced": rebalanced is not None,
                   "taskRows": list(runner.counters.task_rows)}
    finally:
        store.close()
    if path:
        remove_checkpoint(path)  # complete: a rerun starts afresh
    for settings, best in zip(all_settings, bests):
        logger.info("fitted %d components on %d rows in %d iterations (converged: %s)",
                    settings.k, counts.n_rows, best.n_iter, best.converged)
    # The phases are the shared ones: every model reports the seconds of all of them.
    telemetry = FitTelemetry(
        runner.counters.resident_passes, runner.counters.job_passes,
        {"storing": storing.seconds, "initialisation": initialising.seconds,
         "em": iterating.seconds},
        8 * counts.n_rows * (counts.n_features + bool(first.weight_col)),
        dict(runner.counters.pass_seconds), balance)
    return [FitResult(best, final, center, counts,
                      [run.mean_log_likelihoods(counts.weight_sum) for run in runs], telemetry,
                      None if moments.minimum is None else (moments.minimum, moments.maximum))
            for best, final, runs in zip(bests, finals, starts)]
