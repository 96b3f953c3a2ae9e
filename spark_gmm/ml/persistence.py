"""Model save/load through pyspark.ml's MLWriter/MLReader: JSON metadata + Parquet arrays.

Layout of a saved model directory::

    metadata/   one JSON line: class, uid, params, formatVersion, k, numFeatures,
                covarianceType, noise (null, or the noise component's weight, log
                volume and the box its rows are drawn from), summary (pyspark.ml's
                DefaultParamsWriter format); the summary holds what the fit found, never
                how it ran (no passes, bytes or seconds: those are the fitted model's
                runRecord)
    data/       Parquet, one row per component: component, weight, mean, covariance

Nothing is ever pickled; loading reads JSON and Parquet only and checks every shape. The
functions here know the format, not the model class (:mod:`.model` wraps them in pyspark.ml's
MLWriter/MLReader).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from pyspark.ml.param import Params
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter
from pyspark.sql import SparkSession
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StructField, StructType

from ..errors import ModelFormatError, cause_in_words
from ..kernels import COVARIANCE_TYPES, GaussianParameters, covariance_of
from ..runtime.connect import is_connect_session, list_files, remove_directory
from ..version import __version__
from .summary import GaussianMixtureSummary

FORMAT_VERSION = 1
# Where the model class lived before the layered layout; such saved models still load.
_LEGACY_CLASS = "spark_gmm.model.GaussianMixtureModel"
# Params older versions saved with every model, which models no longer have.
_DROPPED_PARAMS = ("checkpointPath",)
NoiseBox = tuple[np.ndarray, np.ndarray]  # a noise component's box: lower, upper corners [D]
_DATA_SCHEMA = StructType([
    StructField("component", IntegerType(), False),
    StructField("weight", DoubleType(), False),
    StructField("mean", ArrayType(DoubleType(), False), False),
    StructField("covariance", ArrayType(DoubleType(), False), False),
])


class OverwriteOnConnect:
    """An MLWriter mixin: ``overwrite()`` also works on Spark Connect, where pyspark.ml's
    own overwrite reaches for the JVM of a classic session."""

    sparkSession: SparkSession

    def _handleOverwrite(self, path: str) -> None:
        if is_connect_session(self.sparkSession):
            remove_directory(self.sparkSession, path)
        else:
            super()._handleOverwrite(path)  # type: ignore[misc]


class ParamsWriter(OverwriteOnConnect, DefaultParamsWriter):
    """pyspark.ml's DefaultParamsWriter (the estimator's), overwriting on Connect too."""


def save_model(instance: Params, params: GaussianParameters,
               summary: GaussianMixtureSummary | None, path: str, spark: SparkSession,
               noise_box: NoiseBox | None = None) -> None:
    """Write ``instance``'s params and uid, ``params``, ``summary`` and the noise
    component's box (lower, upper) under ``path``."""
    extra: dict[str, Any] = {
        "formatVersion": FORMAT_VERSION,
        "sparkGmmVersion": __version__,
        "k": params.n_components,
        "numFeatures": params.n_features,
        "covarianceType": params.covariance_type,
        "summary": summary.to_dict() if summary is not None else None,
        "noise": None if not params.has_noise else {
            "weight": params.noise_weight, "logVolume": params.noise_log_volume,
            "box": None if noise_box is None else [b.tolist() for b in noise_box]},
    }
    DefaultParamsWriter.saveMetadata(instance, path, spark, extraMetadata=extra)
    covariance_rows = params.covariance.rows(params.covariances, params.n_components)
    rows = [(j, float(params.weights[j]), params.means[j].tolist(), covariance_rows[j].tolist())
            for j in range(params.n_components)]
    spark.createDataFrame(rows, _DATA_SCHEMA).coalesce(1).write.parquet(
        os.path.join(path, "data"))


def _unexpected_files(spark: Any, path: str) -> list[str]:
    """Files under ``path`` that ``save`` never writes (a pickle, say): reason to refuse."""
    if is_connect_session(spark):
        # The server lists absolute URIs of the non-hidden files: expected are
        # <path>/metadata/part-* and <path>/data/part-*, nothing else.
        root = "/" + path.split("://", 1)[-1].removeprefix("file:").strip("/") + "/"
        found = []
        for file in list_files(spark, path):
            head, folder, name = file.rsplit("/", 2)
            if not (folder in ("metadata", "data") and name.startswith("part-")
                    and (head.rstrip("/") + "/").endswith(root)):
                found.append(file)
        return found
    jvm = spark.sparkContext._jvm
    root = jvm.org.apache.hadoop.fs.Path(path)
    fs = root.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(root):
        return []
    prefix = fs.makeQualified(root).toString().rstrip("/") + "/"
    found, files = [], fs.listFiles(root, True)
    while files.hasNext():
        relative = files.next().getPath().toString()[len(prefix):]
        folder, _, name = relative.rpartition("/")
        expected = folder in ("metadata", "data") and (
            name.startswith("part-") or name == "_SUCCESS"
            or (name.startswith(".") and name.endswith(".crc")))
        if not expected:
            found.append(relative)
    return found


def _metadata(instance: Params, path: str, spark: SparkSession) -> dict[str, Any]:
    expected = f"{type(instance).__module__}.{type(instance).__name__}"
    unexpected = _unexpected_files(spark, path)
    if unexpected:
        raise ModelFormatError(
            f"{path!r} contains files a saved spark-gmm model never has ({unexpected[:3]}); "
            "refusing to load it. Models are JSON metadata and Parquet data only, and "
            "nothing is ever unpickled"
        )
    try:
        metadata = DefaultParamsReader.loadMetadata(path, spark)
    except Exception as error:
        raise ModelFormatError(
            f"cannot read model metadata under {path!r} ({cause_in_words(error)}); is this "
            "a directory written by GaussianMixtureModel.save?"
        ) from error
    if metadata.get("class") not in (expected, _LEGACY_CLASS):
        raise ModelFormatError(f"{path!r} holds a {metadata.get('class')!r}, not a {expected}")
    if metadata.get("formatVersion") != FORMAT_VERSION:
        raise ModelFormatError(
            f"{path!r} has model format {metadata.get('formatVersion')!r}; this version of "
            f"spark-gmm reads format {FORMAT_VERSION}"
        )
    for key in ("paramMap", "defaultParamMap"):
        for name in _DROPPED_PARAMS:
            metadata.get(key, {}).pop(name, None)
    return metadata


def load_model_parts(instance: Params, path: str, spark: SparkSession
                     ) -> tuple[GaussianParameters, GaussianMixtureSummary | None,
                                NoiseBox | None]:
    """Read a saved model: set ``instance``'s uid and params, return its mixture, summary and
    noise box (None without a noise component).

    Raises
    ------
    ModelFormatError
        Not a saved spark-gmm model, an unknown format version, unexpected files (a pickle,
        say), or arrays of the wrong shape. Nothing is unpickled or imported.
    """
    metadata = _metadata(instance, path, spark)
    k, d, covariance_type = (metadata.get("k"), metadata.get("numFeatures"),
                             metadata.get("covarianceType"))
    if (not isinstance(k, int) or not isinstance(d, int) or k < 1 or d < 1
            or covariance_type not in COVARIANCE_TYPES):
        raise ModelFormatError(f"{path!r} metadata has invalid k, numFeatures or "
                               "covarianceType")
    try:
        rows = sorted(spark.read.schema(_DATA_SCHEMA).parquet(os.path.join(path, "data"))
                      .collect())
    except Exception as error:
        raise ModelFormatError(
            f"cannot read the model arrays under {path!r}/data ({cause_in_words(error)}); "
            "the directory is incomplete or corrupted"
        ) from error
    if [r.component for r in rows] != list(range(k)):
        raise ModelFormatError(f"{path!r}/data must hold components 0..{k - 1}; found "
                               f"{[r.component for r in rows]}")
    covariance = covariance_of(covariance_type)
    width = covariance.rows(np.zeros(covariance.shape(k, d)), k).shape[1]
    params = GaussianParameters.from_covariances(
        np.array([r.weight for r in rows]),
        _shaped([r.mean for r in rows], (k, d), path, "means"),
        covariance.from_rows(_shaped([r.covariance for r in rows], (k, width), path,
                                  "covariances"), k, d),
        covariance_type, *_saved_noise(metadata, path),
    )
    instance._resetUid(metadata["uid"])
    DefaultParamsReader.getAndSetParams(instance, metadata)
    saved = metadata.get("summary")
    # Keys other versions saved (the telemetry of older ones, say) are left out.
    columns = (instance.getOrDefault("featuresCol"), instance.getOrDefault("predictionCol"),
               instance.getOrDefault("probabilityCol"))
    return (params, GaussianMixtureSummary.from_dict(saved, columns) if saved else None,
            _saved_box(metadata, path, d))


def _shaped(values: Any, shape: tuple[int, ...], path: str, name: str) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)
    except ValueError:
        array = np.empty(0)
    if array.shape != shape:
        raise ModelFormatError(f"{path!r}: {name} have shape {array.shape}, expected {shape}")
    return array


def _saved_noise(metadata: dict[str, Any], path: str) -> tuple[float, float | None]:
    # (weight, log volume) of a saved noise component; (0, None) without one, as models
    # saved before noise components have.
    noise = metadata.get("noise")
    if noise is None:
        return 0.0, None
    weight, log_volume = (noise.get("weight"), noise.get("logVolume")) if isinstance(
        noise, dict) else (None, None)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in (weight, log_volume)):
        raise ModelFormatError(f"{path!r} metadata has an invalid noise component: {noise!r}")
    return float(weight), float(log_volume)


def _saved_box(metadata: dict[str, Any], path: str, d: int) -> NoiseBox | None:
    box = (metadata.get("noise") or {}).get("box")
    if box is None:
        return None
    lower, upper = (_shaped(corner, (d,), path, "noise box corners") for corner in
                    (box if isinstance(box, list) and len(box) == 2 else [None, None]))
    return lower, upper
