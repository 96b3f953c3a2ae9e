"""The benchmark's rows as one Parquet row group (``spark-gmm bench --skewed``): an input
that Spark reads as partitions of [N, 0] rows (a pandas/pyarrow file often has one row group),
fitted in interleaved rounds against the same rows evenly partitioned, with the fit's row
balance on and off (``balanceRows``).
"""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql import DataFrame

from ..ml.model import GaussianMixtureModel
from ..runtime.progress import phase

logger = logging.getLogger(__name__)

# The benchmark's fit of ours: (rows, spec, start, what, resident tasks, params) -> (seconds,
# model).
Fit = Callable[..., tuple[float, GaussianMixtureModel]]


def one_row_group(source: str, path: str) -> None:
    """Every row of the Parquet files at ``source`` written to ``path`` as one row group."""
    table = pq.read_table(source)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    pq.write_table(table, path, row_group_size=max(1, table.num_rows))


def _per_iteration(model: GaussianMixtureModel) -> float:
    return statistics.median(model.runRecord.iterationSeconds)


def skew_comparison(df: DataFrame, spec: Any, init: GaussianMixtureModel, source: str,
                    fit: Fit) -> dict[str, Any]:
    """Ours per iteration on the rows of ``source`` as one row group (balanced, and with
    ``balanceRows`` off) against the same rows evenly partitioned (``df``), in
    ``max(1, spec.rounds)`` interleaved rounds; every round's figures, their medians, the
    ratios and each fit's row balance as its run record gives it (the rows per input
    partition, per task)."""
    path = os.path.join(spec.work_dir, f"one_row_group_{spec.n}x{spec.d}x{spec.k}.parquet")
    if not os.path.exists(path):
        with phase(f"benchmark: the rows as one row group into {path}", logger):
            one_row_group(source, path)
    skewed = df.sparkSession.read.parquet(path)
    rounds = []
    for number in range(1, max(1, spec.rounds) + 1):
        entry: dict[str, Any] = {}
        for name, frame, balance in (("even", df, True), ("skewed", skewed, True),
                                     ("skewed_unbalanced", skewed, False)):
            _, model = fit(frame, spec, init, f"benchmark: skewed input, round "
                           f"{number}: ours on the {name.replace('_', ' ')} rows",
                           balanceRows=balance)
            entry[name] = {"seconds_per_iteration": _per_iteration(model),
                           "iteration_seconds": list(model.runRecord.iterationSeconds),
                           "balance": model.runRecord.balance}
        entry["skewed_over_even"] = (entry["skewed"]["seconds_per_iteration"]
                                     / entry["even"]["seconds_per_iteration"])
        entry["unbalanced_over_even"] = (entry["skewed_unbalanced"]["seconds_per_iteration"]
                                         / entry["even"]["seconds_per_iteration"])
        rounds.append(entry)
    return {"path": path, "rounds": rounds,
            **{f"{name}_seconds_per_iteration": statistics.median(
                r[name]["seconds_per_iteration"] for r in rounds)
               for name in ("even", "skewed", "skewed_unbalanced")},
            "skewed_over_even": statistics.median(r["skewed_over_even"] for r in rounds),
            "unbalanced_over_even": statistics.median(r["unbalanced_over_even"]
                                                      for r in rounds)}


def format_skewed(skewed: dict[str, Any]) -> str:
    """The skewed-input comparison in words (from a result's ``skewed`` entry)."""
    last = skewed["rounds"][-1]
    how = "one round" if len(skewed["rounds"]) == 1 else (
        f"medians of {len(skewed['rounds'])} rounds")
    return "\n".join([
        f"One row group ({how}): the input's partitions held "
        f"{last['skewed']['balance']['partitionRows']} rows, the tasks of the passes "
        f"{last['skewed']['balance']['taskRows']} (balanced) and "
        f"{last['skewed_unbalanced']['balance']['taskRows']} (balanceRows off); evenly "
        f"partitioned {last['even']['balance']['taskRows']}.",
        f"  ours per iteration: evenly partitioned {skewed['even_seconds_per_iteration']:.4g} s,"
        f" one row group {skewed['skewed_seconds_per_iteration']:.4g} s "
        f"({skewed['skewed_over_even']:.2f}x), with balanceRows off "
        f"{skewed['skewed_unbalanced_seconds_per_iteration']:.4g} s "
        f"({skewed['unbalanced_over_even']:.2f}x)"])

