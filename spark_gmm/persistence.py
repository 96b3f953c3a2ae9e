"""Model save/load through pyspark.ml's MLWriter/MLReader: JSON metadata + Parquet arrays.

Layout of a saved model directory::

    metadata/   one JSON line: class, uid, params, formatVersion, k, numFeatures,
                covarianceType, summary (pyspark.ml's DefaultParamsWriter format)
    data/       Parquet, one row per component: component, weight, mean, covariance

Nothing is ever pickled; loading reads JSON and Parquet only and checks every shape.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StructField, StructType

from .kernels import GaussianParameters
from .kernels.covariance import COVARIANCE_TYPES, covariance_shape

if TYPE_CHECKING:
    from .model import GaussianMixtureModel

FORMAT_VERSION = 1
_DATA_SCHEMA = StructType([
    StructField("component", IntegerType(), False),
    StructField("weight", DoubleType(), False),
    StructField("mean", ArrayType(DoubleType(), False), False),
    StructField("covariance", ArrayType(DoubleType(), False), False),
])


class ModelFormatError(ValueError):
    """A model directory is not a valid spark-gmm model."""


def _component_covariance(params: GaussianParameters, j: int) -> list[float]:
    c = params.covariances
    if params.covariance_type == "tied":
        return c.ravel().tolist()
    if params.covariance_type == "spherical":
        return [float(c[j])]
    return c[j].ravel().tolist()


class GaussianMixtureModelWriter(MLWriter):
    """Writes a :class:`GaussianMixtureModel`; use ``model.write().overwrite().save(path)``."""

    def __init__(self, instance: GaussianMixtureModel) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        from . import __version__

        model = self.instance
        params = model.parameters
        extra: dict[str, Any] = {
            "formatVersion": FORMAT_VERSION,
            "sparkGmmVersion": __version__,
            "k": params.n_components,
            "numFeatures": params.n_features,
            "covarianceType": params.covariance_type,
            "summary": model.summary.to_dict() if model.hasSummary else None,
        }
        DefaultParamsWriter.saveMetadata(model, path, self.sparkSession, extraMetadata=extra)
        rows = [
            (j, float(params.weights[j]), params.means[j].tolist(),
             _component_covariance(params, j))
            for j in range(params.n_components)
        ]
        self.sparkSession.createDataFrame(rows, _DATA_SCHEMA).coalesce(1).write.parquet(
            os.path.join(path, "data")
        )


def _unexpected_files(spark: Any, path: str) -> list[str]:
    """Files under ``path`` that ``save`` never writes (a pickle, say): reason to refuse."""
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


class GaussianMixtureModelReader(MLReader["GaussianMixtureModel"]):
    """Reads a model saved by :class:`GaussianMixtureModelWriter`, validating everything."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> GaussianMixtureModel:
        from .model import GaussianMixtureModel, GaussianMixtureSummary

        expected_class = f"{GaussianMixtureModel.__module__}.{GaussianMixtureModel.__name__}"
        unexpected = _unexpected_files(self.sparkSession, path)
        if unexpected:
            raise ModelFormatError(
                f"{path!r} contains files a saved spark-gmm model never has ({unexpected[:3]}); "
                "refusing to load it. Models are JSON metadata and Parquet data only, and "
                "nothing is ever unpickled"
            )
        try:
            metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        except Exception as error:
            raise ModelFormatError(
                f"cannot read model metadata under {path!r} ({type(error).__name__}); is this "
                "a directory written by GaussianMixtureModel.save?"
            ) from error
        if metadata.get("class") != expected_class:
            raise ModelFormatError(
                f"{path!r} holds a {metadata.get('class')!r}, not a {expected_class}"
            )
        if metadata.get("formatVersion") != FORMAT_VERSION:
            raise ModelFormatError(
                f"{path!r} has model format {metadata.get('formatVersion')!r}; this version of "
                f"spark-gmm reads format {FORMAT_VERSION}"
            )
        k, d, covariance_type = (metadata.get("k"), metadata.get("numFeatures"),
                                 metadata.get("covarianceType"))
        if (not isinstance(k, int) or not isinstance(d, int) or k < 1 or d < 1
                or covariance_type not in COVARIANCE_TYPES):
            raise ModelFormatError(f"{path!r} metadata has invalid k, numFeatures or "
                                   "covarianceType")
        try:
            rows = sorted(self.sparkSession.read.schema(_DATA_SCHEMA)
                          .parquet(os.path.join(path, "data")).collect())
        except Exception as error:
            raise ModelFormatError(
                f"cannot read the model arrays under {path!r}/data ({type(error).__name__}); "
                "the directory is incomplete or corrupted"
            ) from error
        if [r.component for r in rows] != list(range(k)):
            raise ModelFormatError(f"{path!r}/data must hold components 0..{k - 1}; found "
                                   f"{[r.component for r in rows]}")
        params = GaussianParameters.from_covariances(
            np.array([r.weight for r in rows]),
            _shaped([r.mean for r in rows], (k, d), path, "means"),
            _covariances(rows, covariance_type, k, d, path),
            covariance_type,
        )
        model = GaussianMixtureModel(params)
        model._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(model, metadata)
        if metadata.get("summary"):
            model._summary = GaussianMixtureSummary(**metadata["summary"])
        return model


def _shaped(values: Any, shape: tuple[int, ...], path: str, name: str) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)
    except ValueError:
        array = np.empty(0)
    if array.shape != shape:
        raise ModelFormatError(f"{path!r}: {name} have shape {array.shape}, expected {shape}")
    return array


def _covariances(rows: list[Any], covariance_type: str, k: int, d: int, path: str
                 ) -> np.ndarray:
    shape = covariance_shape(covariance_type, k, d)
    if covariance_type == "tied":
        return _shaped(rows[0].covariance, (d * d,), path, "covariances").reshape(shape)
    if covariance_type == "spherical":
        return _shaped([r.covariance for r in rows], (k, 1), path, "covariances").reshape(shape)
    width = d * d if covariance_type == "full" else d
    return _shaped([r.covariance for r in rows], (k, width), path, "covariances").reshape(shape)
