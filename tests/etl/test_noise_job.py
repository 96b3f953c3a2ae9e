"""The fit and score jobs with ``[model] noise = true``: rows from no cluster labelled −1 and
counted, the artifact's report and drift checks with the noise component."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spark_gmm.cli import main
from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.etl.score_job import run_score


def test_fit_and_score_jobs_with_a_noise_component(spark, tmp_path) -> None:
    rng = np.random.default_rng(8)
    centres = np.array([[-8.0, 0.0, 4.0], [8.0, 5.0, 0.0]])
    clusters = np.vstack([rng.normal(size=(400, 3)) + c for c in centres])
    background = rng.uniform(-16, 16, size=(120, 3))
    x = np.vstack([clusters, background]) * [1.0, 10.0, 0.1]  # standardised by the job
    table = pa.table({"id": np.arange(len(x)), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    data = str(tmp_path / "in.parquet")
    pq.write_table(table, data)
    config = build_config({
        "input": {"path": data, "features": ["a", "b", "c"]},
        "model": {"k": 2, "seed": 3, "max_iter": 60, "tol": 1e-6, "noise": True,
                  "noise_initial_weight": 0.2, "path": str(tmp_path / "model")},
        "preprocess": {"standardize": True},
        "output": {"path": str(tmp_path / "labelled")},
        "drift": {"enabled": True},
    })
    report = run_fit(spark, config)
    labelled = pq.read_table(config.output.path).to_pandas().sort_values("id")
    prediction = labelled["prediction"].to_numpy()
    assert (prediction[800:] == -1).mean() >= 0.8 and (prediction[:800] != -1).mean() >= 0.97
    assert {len(p) for p in labelled["probability"]} == {3}
    assert report["rows_labelled"] == len(x)
    assert report["rows_labelled_noise"] == int((prediction == -1).sum())
    diagnostics = json.load(open(os.path.join(config.model.path, "diagnostics.json")))
    assert diagnostics["noise_size"] == report["rows_labelled_noise"]
    assert abs(sum(diagnostics["weights"]) + diagnostics["noise_weight"] - 1.0) < 1e-12
    # The same rows scored with the artifact: the same labels, the noise counted, and the
    # drift check's shares include the noise's.
    score_config = build_config({**config.to_dict(), "output": {
        "path": str(tmp_path / "scored")}, "spark": {}})
    scored_report = run_score(spark, score_config)
    scored = pq.read_table(score_config.output.path).to_pandas().sort_values("id")
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), prediction)
    assert scored_report["rows_labelled_noise"] == report["rows_labelled_noise"]
    shares = scored_report["drift"]["component_shares"]
    assert len(shares["shares"]) == len(shares["weights"]) == 3
    assert abs(shares["weights"][-1] - diagnostics["noise_weight"]) < 1e-12
    assert abs(shares["shares"][-1] - (prediction == -1).mean()) < 1e-12
    assert main(["report", config.model.path, "--output", str(tmp_path / "report")]) == 0
    html = open(tmp_path / "report" / "report.html", encoding="utf-8").read()
    assert "training rows (labelled −1)" in html and "grey crosses" in html
