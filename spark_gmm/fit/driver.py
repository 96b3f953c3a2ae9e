"""One fit on the driver: store the rows, validate, start, iterate, summarise.

:func:`fit_mixture` is what ``GaussianMixture.fit`` runs once its params are read. Each
phase is a function of its own and logs its duration as it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import DataFrame

from ..errors import InvalidInputError
from ..kernels import FeatureMoments, GaussianParameters, SufficientStatistics
from ..runtime.block_store import BlockStore
from ..runtime.connect import ConnectStatistics, ConnectStore, is_connect, store_on_connect
from ..runtime.ingest import (
    check_weight_column,
    feature_moments,
    features_array,
    store_blocks,
    stored_input_counts,
)
from ..runtime.input_checks import InputCounts
from ..runtime.progress import PhaseTiming, phase
from ..runtime.scheduler_state import running_fit
from ..runtime.statistics_pass import DistributedStatistics
from .checkpoint import read_checkpoint, remove_checkpoint, write_checkpoint
from .em import EMRun, RunLimits, best_run, run_em
from .initialization import (
    InitialisationInput,
    from_initial_model,
    initial_mixtures,
    initial_mixtures_together,
)

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


@dataclass(frozen=True)
class FitResult:
    """What a fit produced.

    Attributes
    ----------
    best : EMRun
        The winning restart; its parameters are centred at ``center``.
    final : SufficientStatistics
        Statistics of the final model over every row, cluster sizes included.
    center : ndarray of shape (D,)
    counts : InputCounts
    resident_passes, job_passes : int
        Passes over the stored rows served by resident tasks, and run as Spark jobs.
    phase_seconds : dict
        Seconds of ``storing`` (the first pass: write, count, moments), ``initialisation``
        (0 when resumed from a checkpoint) and ``em`` (the iterations and the final pass).
    stored_bytes : int
        Bytes of block files the fit kept on the executors' local disks (8 per value: the
        features, and the weight when there is a weight column).
    restart_histories : list of list of float
        Every restart's mean log-likelihood per row at each iteration (the best one's too).
    pass_seconds : dict
        On Spark Connect, where the passes' time went (``wall``, ``task_fold``,
        ``client_merge``, see :class:`~spark_gmm.runtime.connect.ConnectStatistics`);
        empty in a classic session.
    """

    best: EMRun
    final: SufficientStatistics
    center: np.ndarray
    counts: InputCounts
    resident_passes: int
    job_passes: int
    phase_seconds: dict[str, float]
    stored_bytes: int = 0
    restart_histories: list[list[float]] = field(default_factory=list)
    pass_seconds: dict[str, float] = field(default_factory=dict)

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
    }


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
                          statistics: DistributedStatistics) -> InitialisationInput:
    return InitialisationInput(
        center=center, variance=moments.variance, statistics=statistics, k=settings.k,
        covariance_type=settings.covariance_type, reg_covar=settings.reg_covar,
        seed=settings.seed % (2**31), n_init=settings.n_init,
    )


def _starts(settings: FitSettings, moments: FeatureMoments, center: np.ndarray,
            statistics: DistributedStatistics, n_features: int,
            initial: GaussianParameters | None) -> list[EMRun]:
    if initial is not None:
        return [EMRun(from_initial_model(initial, settings.k, n_features,
                                         settings.covariance_type, center))]
    spec = _initialisation_input(settings, moments, center, statistics)
    return [EMRun(p) for p in initial_mixtures(spec, settings.init_mode)]


def _iterate(settings: FitSettings, statistics: DistributedStatistics, runs: Sequence[EMRun],
             fingerprints: tuple[dict[str, Any], dict[str, Any]], center: np.ndarray
             ) -> tuple[EMRun, SufficientStatistics]:
    path = settings.checkpoint_path

    def save(_: int, current: Sequence[EMRun]) -> None:
        if path:
            write_checkpoint(path, fingerprints[0], center, current, fingerprints[1])

    run_em(runs, statistics, settings.reg_covar, settings.max_iter, settings.tol,
           on_iteration=save)
    best = best_run(runs)
    [final] = statistics([best.params], count_assignments=True)
    return best, final


def _store(dataset: DataFrame, settings: FitSettings
           ) -> tuple[BlockStore | ConnectStore, type[DistributedStatistics]]:
    # Executor-local files and resident tasks in a classic session; blocks kept on the
    # server and one query per pass on Spark Connect (no SparkContext there).
    check_weight_column(dataset, settings.weight_col)
    features = features_array(dataset, settings.features_col)
    if is_connect(dataset):
        return store_on_connect(dataset, features, settings.weight_col), ConnectStatistics
    return store_blocks(dataset, features, settings.weight_col), DistributedStatistics


def _validated(store: BlockStore | ConnectStore, settings: FitSettings
               ) -> tuple[InputCounts, FeatureMoments]:
    partitions = store.stored_partitions()  # the first pass: files, counts, moments
    counts = stored_input_counts(partitions, settings.features_col, settings.weight_col)
    if settings.k > counts.n_rows:
        raise InvalidInputError(
            f"k={settings.k} is larger than the number of rows ({counts.n_rows}); reduce k")
    return counts, feature_moments(partitions)


def fit_mixture(dataset: DataFrame, settings: FitSettings,
                initial: GaussianParameters | None = None) -> FitResult:
    """Fit a mixture to ``dataset[settings.features_col]`` by distributed EM.

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
    with running_fit():  # fits of this process started together share the task slots
        return _fit_mixture(dataset, settings, initial)


def _fit_mixture(dataset: DataFrame, settings: FitSettings,
                 initial: GaussianParameters | None) -> FitResult:
    logger.debug("fit settings: %s", asdict(settings))
    store, statistics_type = _store(dataset, settings)
    try:
        with phase("storing and checking the rows", logger) as storing:
            counts, moments = _validated(store, settings)
        fingerprints = (_fingerprint(settings, initial is not None),
                        _data_fingerprint(dataset, settings, counts, moments))
        resumed = (read_checkpoint(settings.checkpoint_path, *fingerprints)
                   if settings.checkpoint_path else None)
        center = resumed[0] if resumed is not None else moments.mean
        statistics = statistics_type(store, center, settings.depth)
        # Initialisation and EM need no Spark job of their own: one resident job serves all.
        with statistics.resident(settings.n_init, settings.k):
            initialising = PhaseTiming()
            if resumed is not None:
                runs = resumed[1]
            else:
                label = ("the initial model" if initial is not None else
                         f"initialisation ({settings.init_mode}, {settings.n_init} restart(s) "
                         "sharing each pass)")
                with phase(label, logger) as initialising:
                    runs = _starts(settings, moments, center, statistics, counts.n_features,
                                   initial)
            with phase("EM", logger) as iterating:
                best, final = _iterate(settings, statistics, runs, fingerprints, center)
        logger.info("passes over the data: %d by resident tasks, %d as Spark jobs",
                    statistics.resident_passes, statistics.job_passes)
    finally:
        store.close()
    if settings.checkpoint_path:
        remove_checkpoint(settings.checkpoint_path)  # complete: a rerun starts afresh
    logger.info("fitted %d components on %d rows in %d iterations (converged: %s)",
                settings.k, counts.n_rows, best.n_iter, best.converged)
    return FitResult(best, final, center, counts, statistics.resident_passes,
                     statistics.job_passes,
                     {"storing": storing.seconds, "initialisation": initialising.seconds,
                      "em": iterating.seconds},
                     8 * counts.n_rows * (counts.n_features + bool(settings.weight_col)),
                     [list(run.history) for run in runs],
                     dict(getattr(statistics, "pass_seconds", {})))


# Params in which the models of one shared fit may differ (everything else must match).
SHARED_FIT_VARIES = ("k", "covariance_type", "reg_covar", "seed", "init_mode", "n_init",
                     "max_iter", "tol")


def fit_mixtures(dataset: DataFrame, all_settings: Sequence[FitSettings]) -> list[FitResult]:
    """Several fits of one dataset in shared passes: one storing pass, initialisations that
    share each of their passes (:func:`initial_mixtures_together`), and every EM pass
    computing the statistics of all runs still going. Each result equals
    :func:`fit_mixture`'s for its settings.

    The settings may differ only in :data:`SHARED_FIT_VARIES`, and none may checkpoint.

    Raises
    ------
    ValueError
        Settings that differ elsewhere, or a checkpoint path.
    InvalidInputError
        As :func:`fit_mixture`.
    """
    with running_fit():
        return _fit_mixtures(dataset, all_settings)


def _fit_mixtures(dataset: DataFrame, all_settings: Sequence[FitSettings]) -> list[FitResult]:
    first = all_settings[0]
    fixed = {k: v for k, v in asdict(first).items() if k not in SHARED_FIT_VARIES}
    for settings in all_settings:
        others = {k: v for k, v in asdict(settings).items() if k not in SHARED_FIT_VARIES}
        if others != fixed or settings.checkpoint_path:
            raise ValueError("fits in shared passes may differ only in "
                             f"{', '.join(SHARED_FIT_VARIES)} and may not checkpoint")
    store, statistics_type = _store(dataset, first)
    try:
        with phase("storing and checking the rows", logger) as storing:
            counts, moments = _validated(store, max(all_settings, key=lambda s: s.k))
        center = moments.mean
        statistics = statistics_type(store, center, first.depth)
        components = sum(s.n_init * s.k for s in all_settings)
        with statistics.resident(1, components):
            with phase(f"initialisation of {len(all_settings)} models sharing each pass",
                       logger) as initialising:
                mixtures = initial_mixtures_together(
                    [_initialisation_input(s, moments, center, statistics)
                     for s in all_settings], [s.init_mode for s in all_settings])
            starts = [[EMRun(p, limits=RunLimits(s.reg_covar, s.max_iter, s.tol))
                       for p in restarts] for s, restarts in zip(all_settings, mixtures)]
            with phase(f"EM of {len(all_settings)} models in shared passes",
                       logger) as iterating:
                run_em([run for runs in starts for run in runs], statistics,
                       first.reg_covar, first.max_iter, first.tol)
                bests = [best_run(runs) for runs in starts]
                finals = statistics([best.params for best in bests], count_assignments=True)
    finally:
        store.close()
    stored_bytes = 8 * counts.n_rows * (counts.n_features + bool(first.weight_col))
    # The phases are the shared ones: every model reports the seconds of all of them.
    return [FitResult(best, final, center, counts, statistics.resident_passes,
                      statistics.job_passes,
                      {"storing": storing.seconds, "initialisation": initialising.seconds,
                       "em": iterating.seconds}, stored_bytes,
                      [list(run.history) for run in runs],
                     dict(getattr(statistics, "pass_seconds", {})))
            for best, final, runs in zip(bests, finals, starts)]
