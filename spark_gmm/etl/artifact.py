"""Reading a model artifact back: its feature schema, checked against a job's config."""

from __future__ import annotations

import os
from typing import Any

from pyspark.ml.util import DefaultParamsReader
from pyspark.sql import SparkSession

from ..errors import InvalidInputError, cause_in_words, is_missing, is_permission_denied
from ..ml.bayesian_model import BayesianGaussianMixtureModel
from ..ml.model import GaussianMixtureModel
from .config import JobConfig
from .estimators import FittedModel
from .io import paths_of, read_json
from .locations import artifact_problem
from .prepare import FeatureSchema


def read_artifact(spark: SparkSession, path: str, key: str = "model.path"
                  ) -> tuple[dict[str, Any], FeatureSchema]:
    """``features.json`` of the artifact at ``path`` (named by the config key or option
    ``key``) and its feature schema.

    Raises
    ------
    InvalidInputError
        No readable artifact there; the message says why in words.
    """
    try:
        artifact = read_json(spark, os.path.join(path, "features.json"))
        return artifact, FeatureSchema.from_dict(artifact)
    except Exception as error:
        raise artifact_problem(path, key, _why_unreadable(spark, path, error)) from error


def _why_unreadable(spark: SparkSession, path: str, error: BaseException) -> str:
    if is_permission_denied(error):
        return "is not readable (permission denied)"
    if is_missing(error):
        return ("does not exist" if not paths_of(spark).exists(path)
                else "is not one: it has no features.json")
    return f"is not one: its features.json cannot be used ({cause_in_words(error)})"


def read_artifact_schema(spark: SparkSession, path: str, config: JobConfig, purpose: str,
                         key: str = "model.path") -> tuple[dict[str, Any], FeatureSchema]:
    """:func:`read_artifact`, after checking that the config names the same features in the
    same order.

    Raises
    ------
    InvalidInputError
        No readable artifact there, or other features.
    """
    artifact, schema = read_artifact(spark, path, key)
    if (schema.columns, schema.vector_column) != (config.input.features,
                                                  config.input.features_column):
        raise InvalidInputError(
            f"feature schema mismatch: the model at {path!r} was fitted on "
            f"{list(schema.columns) or schema.vector_column!r} but the config names "
            f"{list(config.input.features) or config.input.features_column!r}; {purpose} "
            "with the same features, in the same order"
        )
    return artifact, schema


def load_model(spark: SparkSession, path: str) -> FittedModel:
    """The model of the artifact at ``path``: a ``BayesianGaussianMixtureModel`` when its
    saved metadata names that class, else a ``GaussianMixtureModel`` (whose reader checks
    the class and the format).

    Raises
    ------
    ModelFormatError
        The saved model is missing or damaged.
    """
    model_path = os.path.join(path, "model")
    bayesian = BayesianGaussianMixtureModel
    if _saved_class(spark, model_path) == f"{bayesian.__module__}.{bayesian.__name__}":
        return bayesian.load(model_path)
    return GaussianMixtureModel.load(model_path)


def _saved_class(spark: SparkSession, model_path: str) -> str | None:
    """The class named in the saved model's metadata; None when there is no readable
    metadata (``GaussianMixtureModel.load`` then says what is wrong, as it always has)."""
    try:
        metadata = DefaultParamsReader.loadMetadata(model_path, spark)
    except Exception:
        return None
    return str(metadata.get("class"))


def read_warm_start(spark: SparkSession, config: JobConfig
                    ) -> tuple[GaussianMixtureModel, FeatureSchema]:
    """The previous model that ``model.warm_start`` names, after checking that it can start
    this fit: same features, same standardisation setting, same k and covariance type.

    Raises
    ------
    InvalidInputError
        Naming what differs.
    """
    path = config.model.warm_start
    _, schema = read_artifact_schema(spark, path, config, "warm-start", "model.warm_start")
    standardised = bool(schema.mean)
    if standardised != config.preprocess.standardize:
        raise InvalidInputError(
            f"the model at {path!r} was fitted {'with' if standardised else 'without'} "
            f"standardisation but preprocess.standardize = "
            f"{str(config.preprocess.standardize).lower()}; set it to "
            f"{str(standardised).lower()} to warm-start from it")
    previous = load_model(spark, path)
    if not isinstance(previous, GaussianMixtureModel):
        raise InvalidInputError(
            f"the model at {path!r} is a BayesianGaussianMixtureModel; model.warm_start "
            "continues a GaussianMixture model (model.estimator = 'mixture')")
    k, covariance_type = config.model.k_values[0], config.model.covariance_types[0]
    if (previous.getK(), previous.getCovarianceType()) != (k, covariance_type):
        raise InvalidInputError(
            f"the model at {path!r} has k={previous.getK()} and covariance_type="
            f"{previous.getCovarianceType()!r}; the config has k={k} and covariance_type="
            f"{covariance_type!r}; set them to match to warm-start from it")
    return previous, schema
