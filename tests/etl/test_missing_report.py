"""`spark-gmm report` on an artifact fitted with ``[input] missing_features = "marginalize"``:
the sample of training rows holds rows with missing features; the report renders."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm.cli import main
from spark_gmm.etl.config import build_config
from spark_gmm.etl.fit_job import run_fit
from spark_gmm.etl.report import SAMPLE


def test_report_of_a_marginalized_fit_renders(spark, tmp_path) -> None:
    rng = np.random.default_rng(6)
    x = np.vstack([rng.normal(size=(200, 3)) + c for c in ([-5.0, 0, 2], [5.0, 3, -2])])
    holed = np.array(x)
    holed[::4, 1] = np.nan  # a quarter of the rows miss b, an eighth also c
    holed[::8, 2] = np.nan
    data = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"a": holed[:, 0], "b": holed[:, 1], "c": holed[:, 2]}), data)
    config = build_config({
        "input": {"path": data, "features": ["a", "b", "c"],
                  "missing_features": "marginalize"},
        "model": {"k": 2, "seed": 3, "max_iter": 20, "path": str(tmp_path / "model")},
        "preprocess": {"standardize": True},
        "output": {"path": str(tmp_path / "labelled")},
        "report": {"sample_rows": 1000},
    })
    run_fit(spark, config)
    sample = pq.read_table(os.path.join(config.model.path, SAMPLE)).to_pandas()
    stored = np.array([np.asarray(v, dtype=float) for v in sample["features"]])
    assert len(stored) == len(x) and np.isnan(stored).any(axis=1).sum() == 100
    assert main(["report", config.model.path, "--output", str(tmp_path / "report")]) == 0
    html = open(tmp_path / "report" / "report.html", encoding="utf-8").read()
    assert "rows by predicted component" in html and "per-feature histograms" in html
    assert ("300 sampled training rows coloured by predicted component (100 sampled rows with "
            "missing features are left out)") in html


def test_the_marginal_figure_draws_each_features_observed_values() -> None:
    from spark_gmm.kernels import GaussianParameters
    from spark_gmm.report.figures import draw_marginals

    rng = np.random.default_rng(2)
    p = GaussianParameters.from_covariances(np.array([0.4, 0.6]), rng.normal(size=(2, 3)),
                                            np.ones((2, 3)), "diag")
    rows = rng.normal(size=(90, 3))
    rows[::3, 1] = np.nan
    figure = draw_marginals(p, rows, ["a", "b", "c"], [], [])
    for j, axes in enumerate(figure.axes[:3]):
        lines = axes.get_lines()
        assert len(lines) == 3  # two components and the mixture
        assert all(np.isfinite(line.get_xydata()).all() for line in lines), j
        heights = np.array([bar.get_height() for bar in axes.patches])
        widths = np.array([bar.get_width() for bar in axes.patches])
        assert (heights * widths).sum() == pytest.approx(1.0)  # a density of the observed
