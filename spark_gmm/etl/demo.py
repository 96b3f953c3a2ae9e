"""The embedded demo: Fisher's Iris measurements (shipped in the package), fit and labelled."""

from __future__ import annotations

from importlib import resources
from typing import Any

from pyspark.sql import SparkSession

from .config import JobConfig, build_config
from .fit_job import run_fit

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_path() -> str:
    """Path of the Iris CSV inside the package (150 rows, 4 features, species)."""
    return str(resources.files("spark_gmm") / "data" / "iris.csv")


def demo_config(output_dir: str = "output/demo") -> JobConfig:
    """The demo's config; ``conf/demo.toml`` is the same with a repository-relative path."""
    return build_config({
        "input": {"path": iris_path(), "format": "csv", "features": IRIS_FEATURES},
        "model": {"k": 3, "covariance_type": "full", "tol": 1e-6, "n_init": 3, "seed": 7,
                  "path": f"{output_dir}/model"},
        "output": {"path": f"{output_dir}/labelled", "outlier_quantile": 0.02},
    })


def crosstab(spark: SparkSession, labelled_path: str, k: int) -> list[tuple[str, list[int]]]:
    """Species × cluster counts read back from the written output."""
    counts = {(r.species, r.prediction): r["count"] for r in
              spark.read.parquet(labelled_path).groupBy("species", "prediction").count()
              .collect()}
    return [(s, [int(counts.get((s, j), 0)) for j in range(k)])
            for s in sorted({s for s, _ in counts})]


def run_demo(spark: SparkSession, output_dir: str = "output/demo") -> dict[str, Any]:
    config = demo_config(output_dir)
    report = run_fit(spark, config)
    report["crosstab"] = crosstab(spark, config.output.path, len(report["weights"]))
    return report
