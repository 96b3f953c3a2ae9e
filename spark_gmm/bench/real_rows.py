"""Real rows per iteration against complete rows and a plain mixture (``spark-gmm bench
--missing`` and ``--noise``, #27).

``--missing``: the benchmark's rows are written once more with 30 % of the rows (drawn by
the seed) missing 1 or 2 of their features (NaN; never all of them), and fitted with
``missingFeatures="marginalize"``. ``--noise``: the same rows as the plain fit, with
``noise=True``. Each round fits, back to back from the benchmark's random-rows start with
``tol`` 0: plain EM on the complete rows (the reference), then each asked-for variant; per
iteration is the median of each fit's own iteration seconds, as the benchmark's rounds take
EM's. The targets at 1M × 10 × 8: an iteration with missing features ≤ 2× the complete-data
iteration, with the noise component ≤ 1.1×.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame

from ..errors import UserInputError
from ..ml.estimator import GaussianMixture
from ..ml.model import GaussianMixtureModel
from ..runtime.progress import phase
from .variants import (
    cell,
    format_comparison,
    how_many,
    interleaved_comparison,
    model_entry,
    ratio_sentence,
)

logger = logging.getLogger(__name__)

MISSING_SHARE = 0.3  # of the rows, each missing 1 or 2 features
TARGETS = {"missing": 2.0, "noise": 1.1}
# The option, the estimator's param it needs and that param's value.
VARIANTS = {"missing": ("--missing", "missingFeatures", "marginalize"),
            "noise": ("--noise", "noise", True)}
COLUMNS = ("ours, complete rows", "ours, 30 % of rows missing 1-2 features", "ours, noise=True")


def unsupported(asked: Sequence[str]) -> list[str]:
    """Why the variants in ``asked`` (``missing``, ``noise``) cannot run with this build's
    ``GaussianMixture``, one message each (empty: all can)."""
    estimator = GaussianMixture()
    return [f"{VARIANTS[v][0]} needs GaussianMixture's {VARIANTS[v][1]} param, which this "
            "version of spark-gmm does not have" for v in asked
            if not estimator.hasParam(VARIANTS[v][1])]


def with_missing_features(source: str, path: str, seed: int, share: float = MISSING_SHARE
                          ) -> int:
    """The Parquet files at ``source`` written to ``path`` (same names) with ``share`` of
    each file's rows missing 1 or 2 features (at most D − 1), set to NaN; the rows and the
    features missing are drawn from ``seed``. Returns the number of rows with a NaN."""
    files = sorted(f for f in os.listdir(source) if f.endswith(".parquet"))
    os.makedirs(path, exist_ok=True)
    incomplete = 0
    for index, name in enumerate(files):
        table = pq.read_table(os.path.join(source, name))
        x = np.column_stack([table.column(c).to_numpy() for c in table.column_names])
        n, d = x.shape
        if d < 2:
            raise UserInputError("--missing needs at least 2 features: a row keeps one")
        rng = np.random.default_rng([seed, index])
        rows = rng.choice(n, round(share * n), replace=False)
        # Each chosen row: 1 or 2 distinct features, the first ones of a random order.
        order = np.argsort(rng.random((len(rows), d)), axis=1)
        counts = rng.integers(1, min(2, d - 1) + 1, size=len(rows))
        for j in range(min(2, d - 1)):
            hit = counts > j
            x[rows[hit], order[hit, j]] = np.nan
        incomplete += len(rows)
        pq.write_table(pa.table({c: x[:, i] for i, c in enumerate(table.column_names)}),
                       os.path.join(path, name))
    return incomplete


def real_rows_comparison(df: DataFrame, spec: Any, init: GaussianMixtureModel, source: str,
                         fit: Callable[..., tuple[float, GaussianMixtureModel]]
                         ) -> dict[str, Any]:
    """Plain EM on the complete rows and the variants ``spec`` asks for (``spec.missing``,
    ``spec.noise``) in ``max(1, spec.rounds)`` interleaved rounds from ``init``; ``source``:
    the benchmark's Parquet rows; ``fit``: its fit of ours.

    Returns
    -------
    dict
        What :func:`~spark_gmm.bench.variants.interleaved_comparison` returns for ``plain``
        and the variants, with ``missing_over_plain`` / ``noise_over_plain``; with
        ``missing``, ``missing_path`` and ``incomplete_rows``.
    """
    asked = [v for v in VARIANTS if getattr(spec, v)]
    problems = unsupported(asked)
    if problems:
        raise UserInputError("; ".join(problems))
    out: dict[str, Any] = {}

    def measure(frame: DataFrame, label: str, **params: Any) -> Callable[[str], dict]:
        def run(what: str) -> dict[str, Any]:
            seconds, model = fit(frame, spec, init, f"{what}: ours, {label}", **params)
            summary = model.summary
            entry = {**model_entry(seconds, model),
                     "mean_log_likelihood": summary.logLikelihood / summary.weightSum}
            if params.get("noise"):
                entry["noise_weight"] = float(model.noiseWeight)
            return entry
        return run

    measures = {"plain": measure(df, "complete rows")}
    if "missing" in asked:
        path = os.path.join(spec.work_dir, f"missing_{spec.n}x{spec.d}x{spec.k}")
        with phase(f"benchmark: the rows with {MISSING_SHARE:.0%} of them missing 1-2 "
                   f"features into {path}", logger):
            out["incomplete_rows"] = with_missing_features(source, path, spec.seed)
        out["missing_path"] = path
        measures["missing"] = measure(df.sparkSession.read.parquet(path),
                                      "missing features marginalized",
                                      missingFeatures="marginalize")
    if "noise" in asked:
        measures["noise"] = measure(df, "noise component", noise=True)
    result = interleaved_comparison(spec.rounds, "real rows", measures,
                                    [(v, "plain") for v in asked])
    return {**out, **result}


def format_real_rows(result: dict[str, Any], spec: dict[str, Any]) -> str:
    """The ``real_rows`` entry of a result as a table (a column per fit) and sentences."""
    names = ("plain", "missing", "noise")
    present = result["rounds"][0]
    wanted = spec["iterations"]

    def column(name: str, key: str, number: str) -> str:
        if name not in present:
            return f"not run: no {VARIANTS[name][0]}"
        values = [e[name][key] for e in result["rounds"]]
        return cell(float(np.median(values)), number)

    def runs(name: str) -> str:
        if name not in present:
            return f"not run: no {VARIANTS[name][0]}"
        counts = sorted({e[name]["iterations_run"] for e in result["rounds"]})
        return "/".join(str(c) for c in counts) + f" of {wanted}"

    rows = [
        ("seconds per iteration", [column(n, "seconds_per_iteration", "{:.4f}")
                                   for n in names]),
        ("iterations run", [runs(n) for n in names]),
        ("seconds end to end", [column(n, "end_to_end_seconds", "{:.2f}") for n in names]),
        ("final mean log-likelihood", [column(n, "mean_log_likelihood", "{:.6f}")
                                       for n in names]),
        ("noise weight", ["n/a: no noise component", "n/a: no noise component",
                          column("noise", "noise_weight", "{:.4f}")]),
    ]
    title = (f"Real rows: {spec['n']:,} rows × {spec['d']} features, K={spec['k']}, full "
             f"covariance, {wanted} iterations from the random-rows start (tol 0)\n"
             f"every column: {how_many(result)}")
    sentences = []
    if "missing" in present:
        sentences.append(ratio_sentence(
            result, "missing", "plain", "an iteration with missing features (marginalized)",
            "a complete-data iteration", TARGETS["missing"]))
        sentences.append(f"{result['incomplete_rows']:,} rows miss 1 or 2 features; their "
                         "log-likelihood is the observed-data one")
    if "noise" in present:
        sentences.append(ratio_sentence(result, "noise", "plain", "an iteration with the "
                                        "noise component", "a plain iteration",
                                        TARGETS["noise"]))
    return format_comparison(title, COLUMNS, rows, sentences)
