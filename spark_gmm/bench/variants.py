"""Fits of one shape against each other per iteration, in interleaved rounds: what the
optional comparisons ``spark-gmm bench --bayesian``, ``--missing`` and ``--noise`` share.

Each round runs every fit once, back to back, and takes each ratio within the round; the
result holds every round's entries and ratios, and the medians over the rounds (of the
figures, and of the rounds' ratios), as ``results.skewed`` does.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from .report import _grid, _wrapped, faster

# A fit of a comparison: the round's name (for the log) -> its entry, whose
# ``seconds_per_iteration`` is a number, or None when it could not be measured.
Measure = Callable[[str], dict[str, Any]]


def model_entry(seconds: float, model: Any) -> dict[str, Any]:
    """The per-iteration figures of a fitted model of ours (``GaussianMixtureModel`` or
    ``BayesianGaussianMixtureModel``) from its run record, as the benchmark's rounds take
    them: the median of the seconds of its iterations (each a pass and the driver's step)."""
    record = model.runRecord
    return {"seconds_per_iteration": statistics.median(record.iterationSeconds),
            "iteration_seconds": list(record.iterationSeconds),
            "iterations_run": len(record.iterationSeconds), "end_to_end_seconds": seconds,
            "phase_seconds": dict(record.phaseSeconds)}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if not numerator or not denominator else numerator / denominator


def interleaved_comparison(rounds: int, what: str, measures: dict[str, Measure],
                           ratios: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``max(1, rounds)`` rounds of every measure in ``measures`` (in that order).

    Returns
    -------
    dict
        ``rounds`` (each round's entry per measure and its ratios ``A_over_B`` for every
        (A, B) of ``ratios``), ``NAME_seconds_per_iteration`` (the median over the rounds,
        per measure), ``A_over_B`` (the median of the rounds' ratios, None if no round
        measured both) and ``A_over_B_rounds`` (the rounds' ratios that were measured).
    """
    count = max(1, rounds)
    entries: list[dict[str, Any]] = []
    for number in range(1, count + 1):
        entry: dict[str, Any] = {name: measure(f"benchmark: {what}, round {number} of {count}")
                                 for name, measure in measures.items()}
        for a, b in ratios:
            entry[f"{a}_over_{b}"] = _ratio(entry[a]["seconds_per_iteration"],
                                            entry[b]["seconds_per_iteration"])
        entries.append(entry)
    out: dict[str, Any] = {"rounds": entries}
    for name in measures:
        measured = [e[name]["seconds_per_iteration"] for e in entries
                    if e[name]["seconds_per_iteration"] is not None]
        out[f"{name}_seconds_per_iteration"] = statistics.median(measured) if measured else None
    for a, b in ratios:
        measured = [e[f"{a}_over_{b}"] for e in entries if e[f"{a}_over_{b}"] is not None]
        out[f"{a}_over_{b}"] = statistics.median(measured) if measured else None
        out[f"{a}_over_{b}_rounds"] = measured
    return out


def how_many(result: dict[str, Any]) -> str:
    """'one round' or 'medians of N interleaved rounds'."""
    count = len(result["rounds"])
    return "one round" if count == 1 else f"medians of {count} interleaved rounds"


def ratio_sentence(result: dict[str, Any], a: str, b: str, first: str, second: str,
                   target: float | None = None) -> str:
    """``A_over_B`` of ``result`` in words: 'FIRST takes 1.03× the time of SECOND (target ≤
    1.15×; median of the rounds' ratios: 1.02×, 1.04×, 1.03×)', or that it is missing."""
    ratio, each = result[f"{a}_over_{b}"], result[f"{a}_over_{b}_rounds"]
    if ratio is None:
        return f"{first} against {second}: not measured"
    notes = [] if target is None else [f"target ≤ {target:.2f}×"]
    if len(result["rounds"]) > 1:
        notes.append("median of the rounds' ratios: " + ", ".join(f"{r:.2f}×" for r in each))
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"{first} takes {ratio:.2f}× the time of {second}{tail}"


def faster_sentence(result: dict[str, Any], a: str, b: str, first: str, second: str) -> str:
    """``A_over_B`` of ``result`` (A's time over B's) as 'SECOND is N× faster than FIRST
    per iteration (…the rounds' ratios…)', or the other way round."""
    ratio, each = result[f"{a}_over_{b}"], result[f"{a}_over_{b}_rounds"]
    if ratio is None:
        return f"{second} against {first} per iteration: not measured"
    tail = "" if len(result["rounds"]) == 1 else (
        f" (median of the rounds' ratios of {first}'s time to {second}'s: "
        + ", ".join(f"{r:.2f}" for r in each) + ")")
    return faster(second, 1.0, first, ratio, "per iteration" + tail)


def cell(value: Any, number: str) -> str:
    """A table cell: the value formatted, or the value itself when it is a reason."""
    return value if isinstance(value, str) else number.format(value)


def format_comparison(title: str, header: Sequence[str],
                      rows: Sequence[tuple[str, Sequence[str]]], sentences: Sequence[str]
                      ) -> str:
    """One table (a column per fit, every cell a figure or the reason there is none) and the
    ratios below it in words, in the style of the benchmark's printout."""
    return "\n".join([title, *_grid(header, rows), *(_wrapped(s) for s in sentences)])
