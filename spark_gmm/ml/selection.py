"""Choosing K and the covariance type: fit every pair, tabulate BIC, AIC and ICL, keep the
best (lower is better for all three, as scikit-learn defines BIC and AIC)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame

from ..errors import CovarianceError, InvalidInputError
from ..kernels import COVARIANCE_TYPES
from .estimator import GaussianMixture
from .model import GaussianMixtureModel
from .params import PARAMETERS

logger = logging.getLogger(__name__)

CRITERIA = ("bic", "aic", "icl")
TABLE_COLUMNS = ["k", "covarianceType", "logLikelihood", "bic", "aic", "icl", "numIter",
                 "converged", "seconds", "error"]


@dataclass(frozen=True)
class ModelSelection:
    """What :func:`select_model` found.

    Attributes
    ----------
    best : GaussianMixtureModel
        The fit with the lowest ``criterion``.
    table : pandas.DataFrame
        One row per (k, covarianceType), in the order fitted: :data:`TABLE_COLUMNS`.
        ``logLikelihood`` is the total over the rows; ``seconds`` an equal share of the
        passes all models shared (a model's own fit when they could not share); ``error``
        says why a fit failed (its criteria are then NaN), empty otherwise.
    criterion : str
    models : dict
        Every successful fit by (k, covarianceType), or by (k, covarianceType, noise) when
        the grid holds both values of ``noise`` (the table then has a ``noise`` column after
        ``covarianceType``).
    """

    best: GaussianMixtureModel
    table: pd.DataFrame
    criterion: str
    models: dict[tuple[Any, ...], GaussianMixtureModel]


# A grid point: k, covariance type, and noise (None: the estimator's own, not a grid axis).
_Point = tuple[int, str, bool | None]


def _key(point: _Point) -> tuple[Any, ...]:
    return point if point[2] is not None else point[:2]


def _noise_grid(noise: bool | Iterable[bool] | None) -> list[bool | None]:
    values = [None] if noise is None else [bool(noise)] if isinstance(noise, bool) else list(
        dict.fromkeys(bool(v) for v in noise))
    if not values:
        raise InvalidInputError("noise must hold at least one of true, false")
    return values


def _grid(k: int | Iterable[int], covariance_types: str | Iterable[str]
          ) -> tuple[list[int], list[str]]:
    ks = [k] if isinstance(k, int) else [int(v) for v in k]
    types = [covariance_types] if isinstance(covariance_types, str) else list(covariance_types)
    k_rule, type_rule = PARAMETERS["k"], PARAMETERS["covarianceType"]
    if not ks or any(k_rule.problem(v) for v in ks):
        raise InvalidInputError(f"k must hold at least one value, all {k_rule.allowed}; "
                                f"got {ks}")
    if not types or any(type_rule.problem(t) for t in types):
        raise InvalidInputError(f"covarianceTypes must be some of "
                                f"{', '.join(type_rule.choices)}; got {types}")
    return list(dict.fromkeys(ks)), list(dict.fromkeys(types))


def select_model(dataset: DataFrame, k: int | Iterable[int] = range(1, 11),
                 covarianceTypes: str | Iterable[str] = COVARIANCE_TYPES,
                 criterion: str = "bic", noise: bool | Iterable[bool] | None = None,
                 **estimator_params: Any) -> ModelSelection:
    """Fit a mixture for every (k, covariance type) and keep the best by ``criterion``.

    Parameters
    ----------
    dataset : DataFrame
        Persisted here for the duration when it is not already.
    k : int or iterable of int
    covarianceTypes : str or iterable of str
    criterion : {"bic", "aic", "icl"}
        BIC = −2 log L + p log N, AIC = −2 log L + 2p (p free parameters, scikit-learn's
        counts), ICL = BIC + 2 Σ_n w_n H(γ_n), which also penalises overlapping components.
    noise : bool or iterable of bool, optional
        With or without a uniform noise component (``[False, True]``: both, compared by
        ``criterion``, the noise weight counting as one more free parameter).
    **estimator_params
        Any other :class:`GaussianMixture` param (featuresCol, maxIter, tol, seed, ...).

    Returns
    -------
    ModelSelection

    Raises
    ------
    InvalidInputError
        Bad grid or criterion, or bad input (as :meth:`GaussianMixture.fit`).
    CovarianceError
        Every fit failed.
    """
    if criterion not in CRITERIA:
        raise InvalidInputError(f"criterion must be one of {', '.join(CRITERIA)}; "
                                f"got {criterion!r}")
    ks, types = _grid(k, covarianceTypes)
    noises = _noise_grid(noise)
    if len(noises) == 1 and noises[0] is not None:
        estimator_params = {**estimator_params, "noise": noises[0]}
        noises = [None]
    estimator = GaussianMixture(**estimator_params)
    persist_here = not dataset.storageLevel.useMemory and not dataset.storageLevel.useDisk
    if persist_here:
        dataset = dataset.persist(StorageLevel.MEMORY_AND_DISK)
    pairs: list[_Point] = [(components, t, n) for n in noises for t in types
                           for components in ks]
    models: dict[tuple[Any, ...], GaussianMixtureModel] = {}
    try:
        try:
            rows = _fit_shared(estimator, dataset, pairs, models)
        except CovarianceError as failure:
            # One pair's covariance collapsed: fit each alone to keep the others.
            logger.warning("a fit in shared passes failed (%s); fitting each pair alone",
                           failure)
            models.clear()
            rows = [_fit_one(estimator, dataset, point, models) for point in pairs]
    finally:
        if persist_here:
            dataset.unpersist()
    columns = TABLE_COLUMNS if noises == [None] else [*TABLE_COLUMNS[:2], "noise",
                                                       *TABLE_COLUMNS[2:]]
    table = pd.DataFrame(rows, columns=columns)
    if not models:
        raise CovarianceError("every fit failed: " + "; ".join(table["error"]))
    best_row = table.loc[table[criterion].idxmin()]
    best = models[_key((int(best_row["k"]), str(best_row["covarianceType"]),
                        None if noises == [None] else bool(best_row["noise"])))]
    logger.info("model selection by %s: k=%d, covarianceType=%s%s (%s %.6g)", criterion,
                best_row["k"], best_row["covarianceType"],
                "" if noises == [None] else f", noise={bool(best_row['noise'])}", criterion,
                best_row[criterion])
    return ModelSelection(best, table, criterion, models)


def _row(point: _Point, model: GaussianMixtureModel | None, seconds: float
         ) -> dict[str, Any]:
    k, covariance_type, noise = point
    head = {"k": k, "covarianceType": covariance_type} | (
        {} if noise is None else {"noise": noise})
    if model is None:
        return head
    summary = model.summary
    return {**head, "logLikelihood": summary.logLikelihood,
            "bic": summary.bic, "aic": summary.aic,
            "icl": math.nan if summary.icl is None else summary.icl,
            "numIter": summary.numIter, "converged": summary.converged,
            "seconds": seconds, "error": ""}


def _param_map(estimator: GaussianMixture, point: _Point) -> dict[Any, Any]:
    k, covariance_type, noise = point
    return {estimator.k: k, estimator.covarianceType: covariance_type} | (
        {} if noise is None else {estimator.noise: noise})


def _fit_shared(estimator: GaussianMixture, dataset: DataFrame, pairs: list[_Point],
                models: dict[tuple[Any, ...], GaussianMixtureModel]) -> list[dict[str, Any]]:
    maps = [_param_map(estimator, point) for point in pairs]
    fitted = dict(estimator.fitMultiple(dataset, maps))
    rows = []
    for index, point in enumerate(pairs):
        model = fitted[index]
        models[_key(point)] = model
        # An equal share of the passes every model shared (storing, initialisation, EM).
        seconds = sum(model.runRecord.phaseSeconds.values()) / len(pairs)
        rows.append(_row(point, model, seconds))
    return rows


def _fit_one(estimator: GaussianMixture, dataset: DataFrame, point: _Point,
             models: dict[tuple[Any, ...], GaussianMixtureModel]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        model = estimator.copy(_param_map(estimator, point)).fit(dataset)
    except CovarianceError as failure:  # this pair only: its criteria stay NaN
        logger.warning("k=%d, covarianceType=%s failed: %s", point[0], point[1], failure)
        return {**_row(point, None, 0.0), "logLikelihood": math.nan,
                "bic": math.nan, "aic": math.nan, "icl": math.nan, "numIter": 0,
                "converged": False, "seconds": time.perf_counter() - started,
                "error": str(failure)}
    models[_key(point)] = model
    return _row(point, model, time.perf_counter() - started)
