"""The benchmark's printout, rendered from the stored reference run (no Spark): one table
with a figure or a reason in every cell, the comparisons in words, no raw keys."""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

import pytest

from spark_gmm.bench.report import SYSTEMS, faster, format_table

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "benchmarks",
                         "1m-10-8.json")


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    with open(REFERENCE) as handle:
        return json.load(handle)["results"]


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _table(text: str) -> dict[str, list[str]]:
    """The table's rows by measure: the lines after the title up to the first blank line,
    cells split on two or more spaces."""
    lines = text.split("\n\n")[0].splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith(SYSTEMS[0]))
    assert re.split(r"\s{2,}", lines[header].strip()) == list(SYSTEMS)
    rows = {}
    for line in lines[header + 1:]:
        label, *cells = re.split(r"\s{2,}", line.strip())
        rows[label] = cells
    return rows


def _unwrapped(text: str) -> str:
    """The sentences below the table, each on one line again."""
    return re.sub(r"\n    (?=\S)", " ", text)


def _assert_every_cell_filled(text: str) -> dict[str, list[str]]:
    rows = _table(text)
    assert set(rows) == {"seconds per iteration", "seconds end to end", "initialisation seconds",
                         "EM iterations run", "final mean log-likelihood"}
    for label, cells in rows.items():
        assert len(cells) == len(SYSTEMS), (label, cells)
        for cell in cells:
            assert cell and cell.lower() not in ("n/a", "none", "nan", "-"), (label, cells)
    return rows


def test_reference_run_reads_as_a_table_and_sentences_without_raw_keys(reference) -> None:
    text = _unwrapped(format_table(reference))
    # no key of the record (the raw ones have underscores), no "key: value" dump
    raw = {key for key in _keys(reference) if "_" in key}
    assert raw and not [key for key in raw if key in text]
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", text)
    rows = _assert_every_cell_filled(text)
    assert text.startswith("1,000,000 rows × 10 features, K=8")
    # The per-iteration row holds the rounds' medians, the figures the ratios come from.
    mllib_rounds = [r["mllib"]["seconds_per_iteration"] for r in reference["rounds"]["rounds"]]
    assert rows["seconds per iteration"][2] == f"{sorted(mllib_rounds)[1]:.4f}"
    assert rows["seconds per iteration"][0] == (
        f"{reference['rounds']['random_rows_seconds_per_iteration']:.4f}")
    assert rows["EM iterations run"][2] == "10 of 10"
    # the ratios named in words, with what they compare
    assert "ours is 9.8× faster than MLlib per iteration from the random-rows start" in text
    assert "ours is 10.2× faster than MLlib per iteration from the k-means|| start" in text
    assert "ratios: 9.8×, 10.8×, 8.1×" in text
    assert "faster than scikit-learn per iteration" in text
    assert "ours takes 1.19× its time" in text  # the kernel alone: 0.1275 / 0.1073
    assert "MLlib is 1.1× faster than ours at scoring" in text
    assert "mllib" not in text and " s/iter" not in text


def test_columns_not_run_say_why(reference) -> None:
    results = copy.deepcopy(reference)
    for key in ("mllib", "sklearn", "rounds", "kernel_alone", "initialisation_quality"):
        del results[key]
    results["spec"].update(run_mllib=False, run_sklearn=False, rounds=0)
    del results["scoring"]["mllib_seconds"]
    for key in ("mllib_over_ours_per_iteration", "sklearn_over_ours_per_iteration"):
        del results["ratios"][key]
    text = _unwrapped(format_table(results, unavailable=["sklearn"]))
    rows = _assert_every_cell_filled(text)
    for cells in rows.values():
        assert cells[1:] == ["not run: --rounds 0", "not run: --skip-mllib",
                             "not run: not installed"]
    # without rounds, ours is its one timed fit
    assert rows["seconds per iteration"][0] == f"{reference['ours']['seconds_per_iteration']:.4f}"
    assert "one timed fit per system" in text
    assert "MLlib not run (--skip-mllib): no comparison with it" in text
    assert "not run: --skip-sklearn" in format_table(results)


def test_mllib_that_stops_after_one_iteration_is_named_not_left_blank(reference) -> None:
    results = copy.deepcopy(reference)
    for entry in [results["mllib"]] + [r["mllib"] for r in results["rounds"]["rounds"]]:
        entry.update(seconds_per_iteration=None, iterations_run=1)
    for start in ("random_rows", "kmeans"):
        results["rounds"][f"mllib_over_{start}_per_iteration"] = None
        results["rounds"][f"mllib_over_{start}_per_iteration_rounds"] = []
    text = _unwrapped(format_table(results))
    rows = _assert_every_cell_filled(text)
    assert rows["seconds per iteration"][2] == "MLlib stopped after 1 iteration"
    assert rows["EM iterations run"][2] == "1 of 10 (stopped early)"
    assert ("MLlib against ours from the random-rows start per iteration: not measured "
            "(MLlib stopped after 1 iteration)") in text
    assert "faster than MLlib per iteration" not in text


def test_table_and_ratio_agree_when_the_single_fit_could_not_measure_mllib(reference) -> None:
    # The reported contradiction: the one timed MLlib fit unmeasurable, its rounds measured.
    results = copy.deepcopy(reference)
    results["mllib"]["seconds_per_iteration"] = None
    results["ratios"]["mllib_over_ours_per_iteration"] = None
    rows = _assert_every_cell_filled(format_table(results))
    shown = float(rows["seconds per iteration"][2]) / float(rows["seconds per iteration"][0])
    assert shown == pytest.approx(reference["rounds"]["mllib_over_random_rows_per_iteration"],
                                  rel=0.02)


def test_faster_names_the_faster_system_first() -> None:
    assert faster("ours", 0.5, "MLlib", 4.5, "per iteration") == (
        "ours is 9.0× faster than MLlib per iteration")
    assert faster("ours", 2.0, "MLlib", 1.6, "at scoring") == (
        "MLlib is 1.2× faster than ours at scoring")
