"""The fit job with ``[input] missing_features = "marginalize"``: null and NaN features are
missing (rows fitted and labelled), rows with nothing observed stay invalid, the row
accounting counts complete and incomplete rows."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.etl.score_job import run_score


def test_fit_job_marginalizes_missing_features(spark, tmp_path) -> None:
    rng = np.random.default_rng(4)
    centres = np.array([[-6.0, 0.0, 3.0], [6.0, 4.0, -3.0]])
    x = np.vstack([rng.normal(size=(300, 3)) + c for c in centres]) * [1.0, 10.0, 0.1]
    columns = [list(x[:, j]) for j in range(3)]
    for i in range(0, 600, 5):  # one null in a fifth of the rows, two in a tenth
        columns[i % 3][i] = None
        if i % 10 == 0:
            columns[(i + 1) % 3][i] = float("nan")
    for j in range(3):  # one row with nothing observed
        columns[j][1] = None
    data = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"id": np.arange(600), "a": columns[0], "b": columns[1],
                             "c": columns[2]}), data)
    config = build_config({
        "input": {"path": data, "features": ["a", "b", "c"],
                  "missing_features": "marginalize"},
        "model": {"k": 2, "seed": 3, "max_iter": 50, "tol": 1e-6,
                  "path": str(tmp_path / "model")},
        "preprocess": {"standardize": True, "invalid_rows": "skip"},
        "output": {"path": str(tmp_path / "labelled"), "imputed_column": "imputed"},
        "drift": {"enabled": True},
    })
    run_fit(spark, config)
    diagnostics = json.load(open(os.path.join(config.model.path, "diagnostics.json")))
    assert diagnostics["invalid_rows"]["total"] == 1
    assert diagnostics["incomplete_rows_by_missing_features"] == {"1": 60, "2": 60}
    assert diagnostics["complete_rows"] == 600 - 1 - 120
    labelled = pq.read_table(config.output.path).to_pandas().sort_values("id")
    prediction = labelled["prediction"].to_numpy(dtype=float)
    assert np.isnan(prediction[1]) and np.isfinite(np.delete(prediction, 1)).all()
    truth = np.repeat([0, 1], 300)
    keep = np.arange(600) != 1
    agree = (prediction[keep] == truth[keep]).mean()
    assert max(agree, 1 - agree) > 0.99
    means = np.array(diagnostics["original_units"]["means"])
    # Within 0.3 feature standard deviations of the generating centres (300 rows each).
    error = (means[np.argsort(means[:, 0])] / [1.0, 10.0, 0.1]) - centres
    assert np.abs(error).max() < 0.3
    # imputedCol in the features' own units: observed entries as read, missing ones filled.
    imputed = np.array([np.full(3, np.nan) if v is None else v for v in labelled["imputed"]])
    raw = np.column_stack([np.array(c, dtype=float) for c in columns])  # None -> NaN
    seen = ~np.isnan(raw)
    seen[1] = False
    np.testing.assert_allclose(imputed[seen], raw[seen], rtol=1e-12, atol=1e-12)
    assert np.isnan(imputed[1]).all() and np.isfinite(np.delete(imputed, 1, axis=0)).all()
    # The score job's drift check: the share of incomplete rows against training's.
    score = build_config({**config.to_dict(), "output": {
        "path": str(tmp_path / "scored")}, "spark": {}})
    drift = run_score(spark, score)["drift"]["incomplete_rows"]
    assert drift["share"] == drift["training_share"] == 120 / 599
