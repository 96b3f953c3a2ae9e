"""Initial mixtures for EM: k-means‖ (MLlib), k-means++ on a sample, random rows, or a model."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyspark import StorageLevel
from pyspark.ml.clustering import KMeans
from pyspark.ml.functions import array_to_vector
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..errors import InvalidInputError
from ..kernels import GaussianParameters, kernels_for, m_step
from ..kernels.kmeans import kmeans_plus_plus, lloyd
from ..runtime.block_store import BlockStore
from ..runtime.sampling import sample_rows
from ..runtime.statistics_pass import DistributedStatistics

logger = logging.getLogger(__name__)

# Rows of the driver-side sample for k-means++: enough for stable centres, small enough for
# the driver (5,000 rows per component, at most 200,000).
_SAMPLE_ROWS_PER_COMPONENT = 5000
_MAX_SAMPLE_ROWS = 200_000


@dataclass(frozen=True)
class InitialisationInput:
    """What every initialisation mode may use."""

    df: DataFrame
    features: Column
    weight_col: str | None
    store: BlockStore
    center: np.ndarray
    variance: np.ndarray
    statistics: DistributedStatistics
    k: int
    covariance_type: str
    reg_covar: float
    seed: int
    n_init: int
    depth: int


def _diagonal_covariances(variance: np.ndarray, k: int, covariance_type: str,
                          reg_covar: float) -> np.ndarray:
    # A constant feature has zero variance; fall back to 1 so the start is well defined.
    var = np.where(variance > 0, variance, 1.0) + reg_covar
    return kernels_for(covariance_type).from_variances(var, k)


def _random_rows(spec: InitialisationInput) -> list[GaussianParameters]:
    models = []
    for restart in range(spec.n_init):
        rows = sample_rows(spec.store, spec.k, spec.seed + restart, True, spec.depth)
        if rows.shape[0] < spec.k:
            raise InvalidInputError(
                f"k={spec.k} but the data have only {rows.shape[0]} distinct rows; reduce k"
            )
        models.append(GaussianParameters.from_covariances(
            np.full(spec.k, 1.0 / spec.k), rows - spec.center,
            _diagonal_covariances(spec.variance, spec.k, spec.covariance_type, spec.reg_covar),
            spec.covariance_type,
        ))
    return models


def _kmeans_plus_plus_centres(spec: InitialisationInput) -> list[np.ndarray]:
    size = min(_MAX_SAMPLE_ROWS, _SAMPLE_ROWS_PER_COMPONENT * spec.k)
    centres = []
    for restart in range(spec.n_init):
        sample = sample_rows(spec.store, size, spec.seed + restart, False, spec.depth)
        rng = np.random.default_rng(spec.seed + restart)
        centres.append(lloyd(sample, kmeans_plus_plus(sample, spec.k, rng)))
    return centres


def _kmeans_parallel_centres(spec: InitialisationInput) -> list[np.ndarray]:
    sc = spec.df.sparkSession.sparkContext
    weight = F.col(f"`{spec.weight_col}`").cast("double") if spec.weight_col else F.lit(1.0)
    # A layout that depends only on the data (hash partitioning, then sorting) makes MLlib's
    # sampling, and so the centres, independent of how the input was partitioned.
    laid_out = (
        spec.df.select(spec.features.alias("x"), weight.alias("w"))
        .repartition(max(2, sc.defaultParallelism), "x")
        .sortWithinPartitions("x", "w")
        .select(array_to_vector("x").alias("features"), "w")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        centres = []
        for restart in range(spec.n_init):
            kmeans = KMeans(k=spec.k, initMode="k-means||", seed=spec.seed + restart,
                            featuresCol="features", weightCol="w", maxIter=20)
            found = np.array(kmeans.fit(laid_out).clusterCenters(), dtype=np.float64)
            if found.shape[0] < spec.k:
                # Fewer distinct points than k: the surplus components start empty and are
                # re-seeded by the M-step's collapse rule.
                found = np.vstack([found, np.repeat(found[:1], spec.k - found.shape[0], 0)])
            centres.append(found)
        return centres
    finally:
        laid_out.unpersist()


def _from_centres(spec: InitialisationInput, centres: list[np.ndarray]) -> list[GaussianParameters]:
    # One hard-assignment pass turns every restart's centres into weights and covariances.
    placeholders = [
        GaussianParameters.from_covariances(
            np.full(spec.k, 1.0 / spec.k), c - spec.center,
            _diagonal_covariances(spec.variance, spec.k, spec.covariance_type, spec.reg_covar),
            spec.covariance_type,
        )
        for c in centres
    ]
    stats = spec.statistics(placeholders, hard_assignment=True)
    return [m_step(s, spec.covariance_type, spec.reg_covar)[0] for s in stats]


def initial_mixtures(spec: InitialisationInput, init_mode: str) -> list[GaussianParameters]:
    """``spec.n_init`` starting mixtures, in coordinates centred at ``spec.center``."""
    if init_mode == "random":
        return _random_rows(spec)
    if spec.k == 1:  # one cluster: its k-means centre is the data mean (MLlib needs k > 1)
        return _from_centres(spec, [spec.center[None, :]] * spec.n_init)
    if init_mode == "k-means++":
        return _from_centres(spec, _kmeans_plus_plus_centres(spec))
    if init_mode == "k-means||":
        return _from_centres(spec, _kmeans_parallel_centres(spec))
    raise ValueError(f"unknown initMode {init_mode!r}")


def from_initial_model(params: GaussianParameters, k: int, n_features: int,
                       covariance_type: str, center: np.ndarray) -> GaussianParameters:
    """A user-supplied model as the starting point, after checking it fits the data."""
    if params.n_components != k or params.n_features != n_features:
        raise InvalidInputError(
            f"the initial model has k={params.n_components} and {params.n_features} features, "
            f"but the estimator has k={k} and the data {n_features} features; set k to match "
            "or pass a model fitted on the same features"
        )
    if params.covariance_type != covariance_type:
        raise InvalidInputError(
            f"the initial model has covarianceType={params.covariance_type!r} but the estimator "
            f"has {covariance_type!r}; set covarianceType to match"
        )
    return params.shifted(-center)

