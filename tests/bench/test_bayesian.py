"""``spark-gmm bench --bayesian`` runs end to end on tiny sizes: EM, MAP-EM, VB and
scikit-learn's VB in interleaved rounds, every round in the JSON and the ratios taken from the
recorded times (its timings are not asserted); the printout without scikit-learn."""

from __future__ import annotations

import json
import statistics

import pytest

from spark_gmm.bench.bayesian import format_bayesian

ITERATIONS = 3


@pytest.mark.slow
def test_bench_bayesian_records_every_round_and_its_ratios(spark, tmp_path, capsys) -> None:
    from spark_gmm.cli import main

    work_dir = tmp_path / "bench"
    code = main(["bench", "--n", "3000", "--d", "2", "--k", "2", "--iterations",
                 str(ITERATIONS), "--rounds", "2", "--skip-mllib", "--skip-scoring",
                 "--no-warm-up", "--bayesian", "--work-dir", str(work_dir)])
    assert code == 0
    bayesian = json.load(open(work_dir / "benchmark.json"))["bayesian"]
    assert len(bayesian["rounds"]) == 2
    fits = ("em", "map", "vb", "sklearn")
    for entry in bayesian["rounds"]:
        for name in fits:
            fitted = entry[name]
            # tol 0: every fit runs the set iterations, each timed
            assert fitted["iterations_run"] == ITERATIONS
            assert len(fitted["iteration_seconds"]) == ITERATIONS
            assert fitted["seconds_per_iteration"] == statistics.median(
                fitted["iteration_seconds"])
        for a, b in (("map", "em"), ("vb", "em"), ("sklearn", "vb")):
            assert entry[f"{a}_over_{b}"] == pytest.approx(
                entry[a]["seconds_per_iteration"] / entry[b]["seconds_per_iteration"])
        # MAP-EM's objective is the log posterior: below its log-likelihood by -log p(θ)/N
        assert entry["map"]["mean_log_posterior"] != entry["map"]["mean_log_likelihood"]
        # from the same responsibilities the same iterations: scikit-learn's lower bound
        assert entry["vb"]["lower_bounds"] == pytest.approx(entry["sklearn"]["lower_bounds"],
                                                            rel=1e-8)
        assert entry["lower_bound_relative_difference_vs_sklearn"] < 1e-8
    for name in fits:
        assert bayesian[f"{name}_seconds_per_iteration"] == statistics.median(
            e[name]["seconds_per_iteration"] for e in bayesian["rounds"])
    for a, b in (("map", "em"), ("vb", "em"), ("sklearn", "vb")):
        each = [e[f"{a}_over_{b}"] for e in bayesian["rounds"]]
        assert bayesian[f"{a}_over_{b}_rounds"] == each
        assert bayesian[f"{a}_over_{b}"] == statistics.median(each)
    out = capsys.readouterr().out
    flat = " ".join(out.split())  # the sentences are wrapped
    assert ("Bayesian fits: 3,000 rows × 2 features, K=2, full covariance, 3 iterations from "
            "the random-rows start (tol 0)\nevery column: medians of 2 interleaved rounds") in out
    assert (f"an iteration of MAP-EM takes {bayesian['map_over_em']:.2f}× the time of an EM "
            "iteration (target ≤ 1.15×; median of the rounds' ratios: ") in flat
    assert (f"an iteration of VB takes {bayesian['vb_over_em']:.2f}× the time of an EM "
            "iteration") in flat
    assert ("ours (VB) is" in flat and "faster than scikit-learn's BayesianGaussianMixture "
            "per iteration" in flat) or "scikit-learn's BayesianGaussianMixture is" in flat


def _round(em: float, map_: float, vb: float) -> dict:
    def fit(seconds: float, **more: float) -> dict:
        return {"seconds_per_iteration": seconds, "iteration_seconds": [seconds] * 2,
                "iterations_run": 2, "end_to_end_seconds": 10 * seconds, **more}

    return {"em": fit(em, mean_log_likelihood=-1.5),
            "map": fit(map_, mean_log_likelihood=-1.25, mean_log_posterior=-1.75),
            "vb": fit(vb, lower_bound=-300.0), "map_over_em": map_ / em, "vb_over_em": vb / em}


def test_the_printout_without_scikit_learn_says_why_in_every_cell() -> None:
    rounds = [_round(0.2, 0.22, 0.25), _round(0.1, 0.12, 0.1), _round(0.2, 0.2, 0.24)]
    result = {"rounds": rounds, "em_seconds_per_iteration": 0.2,
              "map_seconds_per_iteration": 0.2, "vb_seconds_per_iteration": 0.24,
              "map_over_em": 1.1, "map_over_em_rounds": [1.1, 1.2, 1.0],
              "vb_over_em": 1.2, "vb_over_em_rounds": [1.25, 1.0, 1.2]}
    spec = {"n": 1_000_000, "d": 10, "k": 8, "iterations": 2}
    text = format_bayesian(result, spec, unavailable=["sklearn"])
    lines = text.splitlines()
    assert lines[0] == ("Bayesian fits: 1,000,000 rows × 10 features, K=8, full covariance, 2 "
                        "iterations from the random-rows start (tol 0)")
    assert lines[1] == "every column: medians of 3 interleaved rounds"
    rows = {line.split("  ")[0]: line for line in lines[3:8]}
    assert rows["seconds per iteration"].split()[3:] == [
        "0.2000", "0.2000", "0.2400", "not", "run:", "not", "installed"]
    assert rows["iterations run"].count("2 of 2") == 3
    assert "not run: not installed" in rows["final lower bound"]
    assert "-300" in rows["final lower bound"]
    flat = " ".join(text.split())  # the sentences are wrapped
    assert ("an iteration of MAP-EM takes 1.10× the time of an EM iteration (target ≤ 1.15×; "
            "median of the rounds' ratios: 1.10×, 1.20×, 1.00×)") in flat
    assert "an iteration of VB takes 1.20× the time of an EM iteration (target" in flat
    assert ("scikit-learn's BayesianGaussianMixture not run: not installed: no comparison "
            "with it") in flat
    skipped = format_bayesian(result, spec)
    assert "not run: --skip-sklearn" in skipped
