"""MAP-EM and variational Bayes per iteration against EM, and our variational Bayes against
scikit-learn's ``BayesianGaussianMixture`` (``spark-gmm bench --bayesian``).

Each round fits, back to back from the benchmark's random-rows start with ``tol`` 0 (so
every fit runs ``--iterations`` iterations): our EM, our MAP-EM (``prior="conjugate"``), our
``BayesianGaussianMixture`` (its start: the start model's responsibilities, then one
variational M-step) and, with scikit-learn, its ``BayesianGaussianMixture`` from the same
responsibilities (its ``_initialize(X, resp)``) on the same rows in the driver's memory.
Ours per iteration is the median of the fit's own iteration seconds (its run record: the
pass and the driver's step), as the benchmark's rounds take EM's; scikit-learn's is the
median of its timed iterations (E-step, M-step and lower bound, as its ``fit`` loop runs
them). The ratios are taken within each round; the medians of the rounds' ratios are the
figures: MAP / EM and VB / EM (#26's target at 1M × 10 × 8: ≤ 1.15× each) and
scikit-learn's VB / ours.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..kernels import GaussianParameters, e_step
from ..ml.bayesian import BayesianGaussianMixture
from ..ml.model import GaussianMixtureModel
from ..runtime.progress import phase
from .variants import (
    cell,
    faster_sentence,
    format_comparison,
    how_many,
    interleaved_comparison,
    model_entry,
    ratio_sentence,
)

logger = logging.getLogger(__name__)

#: #26's target for MAP-EM's and VB's iteration against EM's, at 1M × 10 × 8.
TARGET = 1.15
COLUMNS = ("ours, EM", "ours, MAP-EM", "ours, VB", "scikit-learn, VB")
RATIOS = (("map", "em"), ("vb", "em"), ("sklearn", "vb"))
_CHUNK_ROWS = 65_536  # rows per E-step of the start's responsibilities (bounded memory)


def start_responsibilities(x: np.ndarray, start: GaussianParameters) -> np.ndarray:
    """The responsibilities of the start mixture for every row of ``x``, shape (n, K): what
    our fit computes in its first pass, here for scikit-learn's ``_initialize``."""
    return np.vstack([e_step(x[i:i + _CHUNK_ROWS], start)[1]
                      for i in range(0, len(x), _CHUNK_ROWS)])


def sklearn_bayesian(x: np.ndarray, resp: np.ndarray, iterations: int, what: str
                     ) -> dict[str, Any]:
    """scikit-learn's ``BayesianGaussianMixture`` (full covariance, its default priors, as
    ours) from the responsibilities ``resp``, ``iterations`` iterations, each timed."""
    from sklearn.mixture import BayesianGaussianMixture as SkBayesian

    model = SkBayesian(n_components=resp.shape[1], covariance_type="full",
                       max_iter=iterations, tol=0.0)
    with warnings.catch_warnings(), phase(f"{what}: scikit-learn, VB", logger):
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        model._check_parameters(x)
        model._initialize(x, resp)
        start_seconds = time.perf_counter() - started
        seconds, bounds = [], []
        for _ in range(iterations):
            began = time.perf_counter()
            log_prob_norm, log_resp = model._e_step(x)
            model._m_step(x, log_resp)
            bounds.append(float(model._compute_lower_bound(log_resp, log_prob_norm)))
            seconds.append(time.perf_counter() - began)
    return {"seconds_per_iteration": float(np.median(seconds)), "iteration_seconds": seconds,
            "iterations_run": len(seconds), "start_seconds": start_seconds,
            "end_to_end_seconds": start_seconds + sum(seconds), "lower_bound": bounds[-1],
            "lower_bounds": bounds}


def bayesian_comparison(df: DataFrame, spec: Any, init: GaussianMixtureModel,
                        x: np.ndarray | None, fit: Callable[..., tuple[float, Any]]
                        ) -> dict[str, Any]:
    """EM, MAP-EM, VB and (when ``x``, the rows in memory, is given) scikit-learn's VB, in
    ``max(1, spec.rounds)`` interleaved rounds from ``init``; ``fit`` is the benchmark's fit
    of ours ((rows, spec, start, what, **params) -> (seconds, model)).

    Returns
    -------
    dict
        What :func:`~spark_gmm.bench.variants.interleaved_comparison` returns for ``em``,
        ``map``, ``vb`` (and ``sklearn``), with the ratios ``map_over_em``, ``vb_over_em``
        and ``sklearn_over_vb``; each round also holds
        ``lower_bound_relative_difference_vs_sklearn`` (ours and scikit-learn's final lower
        bounds, from the same responsibilities).
    """
    features = df.select(F.array(*[F.col(c) for c in df.columns]).alias("features"))

    def em(what: str, **params: Any) -> dict[str, Any]:
        seconds, model = fit(df, spec, init, what, **params)
        summary = model.summary
        entry = {**model_entry(seconds, model),
                 "mean_log_likelihood": summary.logLikelihood / summary.weightSum}
        if summary.logPosterior is not None:
            entry["mean_log_posterior"] = summary.logPosterior / summary.weightSum
        return entry

    def vb(what: str) -> dict[str, Any]:
        estimator = BayesianGaussianMixture(k=spec.k, maxIter=spec.iterations, tol=0.0,
                                            seed=spec.seed).setInitialModel(init)
        logger.info("%s ...", what)
        started = time.perf_counter()
        model = estimator.fit(features)
        seconds = time.perf_counter() - started
        logger.info("%s took %.2f s", what, seconds)
        summary = model.summary
        return {**model_entry(seconds, model), "lower_bound": summary.lowerBound,
                "lower_bounds": list(summary.lowerBoundHistory),
                "effective_components": summary.effectiveComponents}

    measures = {"em": lambda what: em(f"{what}: ours, EM"),
                "map": lambda what: em(f"{what}: ours, MAP-EM", prior="conjugate"),
                "vb": lambda what: vb(f"{what}: ours, VB")}
    ratios: Sequence[tuple[str, str]] = RATIOS[:2]
    if x is not None:
        with phase("benchmark: the start's responsibilities for scikit-learn's VB", logger):
            resp = start_responsibilities(x, init.parameters)
        measures["sklearn"] = lambda what: sklearn_bayesian(x, resp, spec.iterations, what)
        ratios = RATIOS
    result = interleaved_comparison(spec.rounds, "Bayesian fits", measures, ratios)
    for entry in result["rounds"]:
        if "sklearn" in entry:
            theirs = entry["sklearn"]["lower_bound"]
            entry["lower_bound_relative_difference_vs_sklearn"] = abs(
                entry["vb"]["lower_bound"] - theirs) / abs(theirs)
    return result


def _median(result: dict[str, Any], name: str, key: str) -> float:
    values = [e[name][key] for e in result["rounds"]]
    return float(np.median(values))


def format_bayesian(result: dict[str, Any], spec: dict[str, Any],
                    unavailable: Sequence[str] = ()) -> str:
    """The ``bayesian`` entry of a result as a table (a column per fit) and sentences."""
    has_sklearn = "sklearn" in result["rounds"][0]
    absent = None if has_sklearn else "not run: " + (
        "not installed" if "sklearn" in unavailable else "--skip-sklearn")
    wanted = spec["iterations"]

    def column(name: str, key: str, number: str, reason: str | None = None) -> str:
        if name == "sklearn" and absent:
            return absent
        if reason is not None:
            return reason
        return cell(_median(result, name, key), number)

    names = ("em", "map", "vb", "sklearn")

    def runs(name: str) -> str:
        counts = sorted({e[name]["iterations_run"] for e in result["rounds"]})
        return "/".join(str(c) for c in counts) + f" of {wanted}"

    rows = [
        ("seconds per iteration", [
            absent if n == "sklearn" and absent
            else cell(result[f"{n}_seconds_per_iteration"], "{:.4f}") for n in names]),
        ("iterations run", [absent if n == "sklearn" and absent else runs(n) for n in names]),
        ("seconds end to end", [column(n, "end_to_end_seconds", "{:.2f}") for n in names]),
        ("final mean log-likelihood", [
            column("em", "mean_log_likelihood", "{:.6f}"),
            column("map", "mean_log_likelihood", "{:.6f}"),
            *(column(n, "", "", "n/a: VB reports a lower bound") for n in ("vb", "sklearn"))]),
        ("final lower bound", [
            "n/a: not variational", "n/a: not variational",
            column("vb", "lower_bound", "{:.6g}"), column("sklearn", "lower_bound", "{:.6g}")]),
    ]
    title = (f"Bayesian fits: {spec['n']:,} rows × {spec['d']} features, K={spec['k']}, full "
             f"covariance, {wanted} iterations from the random-rows start (tol 0)\n"
             f"every column: {how_many(result)}")
    sentences = [
        ratio_sentence(result, "map", "em", "an iteration of MAP-EM", "an EM iteration", TARGET),
        ratio_sentence(result, "vb", "em", "an iteration of VB", "an EM iteration", TARGET)]
    if has_sklearn:
        sentences.append(faster_sentence(result, "sklearn", "vb",
                                         "scikit-learn's BayesianGaussianMixture", "ours (VB)"))
        worst = max(e["lower_bound_relative_difference_vs_sklearn"] for e in result["rounds"])
        sentences.append("ours and scikit-learn's VB from the same responsibilities end at the "
                         f"same lower bound (relative difference {worst:.1e})")
        sentences.append("scikit-learn's end to end: its start from the responsibilities and "
                         "its iterations, on rows already in memory")
    else:
        sentences.append(f"scikit-learn's BayesianGaussianMixture {absent}: no comparison "
                         "with it")
    return format_comparison(title, COLUMNS, rows, sentences)
