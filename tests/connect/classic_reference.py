"""Fits every case of :mod:`tests.connect.cases` in a classic local[2] session and writes
the results to an .npz file (run as a separate process: a Connect process cannot hold a
classic session)."""

from __future__ import annotations

import sys

import numpy as np
from pyspark.sql import SparkSession

from tests.connect.cases import cases, estimator, frame


def main(output: str) -> None:
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    df = frame(spark).cache()
    results = {}
    for name, params in cases().items():
        model = estimator(params).fit(df)
        predictions = model.transform(df).orderBy("id").select("prediction").toPandas()
        results[f"{name}/weights"] = model.weights
        results[f"{name}/means"] = model.means
        results[f"{name}/covariances"] = model.covariances
        results[f"{name}/logLikelihood"] = np.array(model.summary.logLikelihood)
        results[f"{name}/numIter"] = np.array(model.summary.numIter)
        results[f"{name}/prediction"] = predictions["prediction"].to_numpy()
    np.savez(output, **results)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
