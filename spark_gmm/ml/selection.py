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
        Every successful fit by (k, covarianceType).
    """

    best: GaussianMixtureModel
    table: pd.DataFrame
    criterion: str
    models: dict[tuple[int, str], GaussianMixtureModel]


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
                 criterion: str = "bic", **estimator_params: Any) -> ModelSelection:
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
    estimator = GaussianMixture(**estimator_params)
    persist_here = not dataset.storageLevel.useMemory and not dataset.storageLevel.useDisk
    if persist_here:
        dataset = dataset.persist(StorageLevel.MEMORY_AND_DISK)
    pairs = [(components, t) for t in types for components in ks]
    models: dict[tuple[int, str], GaussianMixtureModel] = {}
    try:
        try:
            rows = _fit_shared(estimator, dataset, pairs, models)
        except CovarianceError as failure:
            # One pair's covariance collapsed: fit each alone to keep the others.
            logger.warning("a fit in shared passes failed (%s); fitting each pair alone",
                           failure)
            models.clear()
            rows = [_fit_one(estimator, dataset, k_, t, models) for k_, t in pairs]
    finally:
        if persist_here:
            dataset.unpersist()
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    if not models:
        raise CovarianceError("every fit failed: " + "; ".join(table["error"]))
    best_row = table.loc[table[criterion].idxmin()]
    best = models[(int(best_row["k"]), str(best_row["covarianceType"]))]
    logger.info("model selection by %s: k=%d, covarianceType=%s (%s %.6g)", criterion,
                best_row["k"], best_row["covarianceType"], criterion, best_row[criterion])
    return ModelSelection(best, table, criterion, models)


def _row(k: int, covariance_type: str, model: GaussianMixtureModel, seconds: float
         ) -> dict[str, Any]:
    summary = model.summary
    return {"k": k, "covarianceType": covariance_type, "logLikelihood": summary.logLikelihood,
            "bic": summary.bic, "aic": summary.aic,
            "icl": math.nan if summary.icl is None else summary.icl,
            "numIter": summary.numIter, "converged": summary.converged,
            "seconds": seconds, "error": ""}


def _fit_shared(estimator: GaussianMixture, dataset: DataFrame, pairs: list[tuple[int, str]],
                models: dict[tuple[int, str], GaussianMixtureModel]) -> list[dict[str, Any]]:
    maps = [{estimator.k: k, estimator.covarianceType: t} for k, t in pairs]
    fitted = dict(estimator.fitMultiple(dataset, maps))
    rows = []
    for index, (k, covariance_type) in enumerate(pairs):
        model = fitted[index]
        models[(k, covariance_type)] = model
        # An equal share of the passes every model shared (storing, initialisation, EM).
        seconds = sum(model.runRecord.phaseSeconds.values()) / len(pairs)
        rows.append(_row(k, covariance_type, model, seconds))
    return rows


def _fit_one(estimator: GaussianMixture, dataset: DataFrame, k: int, covariance_type: str,
             models: dict[tuple[int, str], GaussianMixtureModel]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        model = estimator.copy({estimator.k: k,
                                estimator.covarianceType: covariance_type}).fit(dataset)
    except CovarianceError as failure:  # this pair only: its criteria stay NaN
        logger.warning("k=%d, covarianceType=%s failed: %s", k, covariance_type, failure)
        return {"k": k, "covarianceType": covariance_type, "logLikelihood": math.nan,
                "bic": math.nan, "aic": math.nan, "icl": math.nan, "numIter": 0,
                "converged": False, "seconds": time.perf_counter() - started,
                "error": str(failure)}
    models[(k, covariance_type)] = model
    return _row(k, covariance_type, model, time.perf_counter() - started)
