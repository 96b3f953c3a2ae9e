"""The benchmark's optional measurements (``--fit-multiple``, ``--skewed``, ``--bayesian``,
``--missing``, ``--noise``): run after the usual ones, each into a key of its own in the
results, and their printouts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pyspark.sql import DataFrame

from ..ml.model import GaussianMixtureModel
from .skewed import Fit


def optional_measurements(df: DataFrame, spec: Any, init: GaussianMixtureModel, source: str,
                          fit: Fit, x: np.ndarray | None) -> dict[str, Any]:
    """The measurements ``spec`` asks for beyond the usual (none: an empty dict).

    Parameters
    ----------
    df : DataFrame
        The benchmark's rows.
    spec : BenchmarkSpec
    init : GaussianMixtureModel
        The random-rows start.
    source : str
        The benchmark's Parquet rows.
    fit : callable
        Its fit of ours.
    x : ndarray of shape (N, D) or None
        Every row in the driver's memory when scikit-learn runs.
    """
    results: dict[str, Any] = {}
    if spec.fit_multiple:
        from .multiple import fit_multiple_speedups

        results["fit_multiple"] = fit_multiple_speedups(df, seed=spec.seed,
                                                        mllib=spec.run_mllib)
    if spec.skewed:
        from .skewed import skew_comparison

        results["skewed"] = skew_comparison(df, spec, init, source, fit)
    if spec.bayesian:
        from .bayesian import bayesian_comparison

        results["bayesian"] = bayesian_comparison(df, spec, init,
                                                  x if spec.run_sklearn else None, fit)
    if spec.missing or spec.noise:
        from .real_rows import real_rows_comparison

        results["real_rows"] = real_rows_comparison(df, spec, init, source, fit)
    return results


def optional_printouts(results: dict[str, Any], unavailable: Sequence[str] = ()) -> list[str]:
    """The printout of each optional measurement in ``results`` (a result file's
    ``results``), in the order they ran; ``unavailable``: optional modules that were
    missing (``"sklearn"``)."""
    out = []
    if "skewed" in results:
        from .skewed import format_skewed

        out.append(format_skewed(results["skewed"]))
    if "bayesian" in results:
        from .bayesian import format_bayesian

        out.append(format_bayesian(results["bayesian"], results["spec"], unavailable))
    if "real_rows" in results:
        from .real_rows import format_real_rows

        out.append(format_real_rows(results["real_rows"], results["spec"]))
    return out
