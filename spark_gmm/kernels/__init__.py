"""Pure-numpy numerics of Gaussian mixtures: this package never imports pyspark or pyarrow.

Everything that differs between covariance types is a method of one class per type
(:mod:`~spark_gmm.kernels.covariance`); the E-step has one entry (:mod:`~spark_gmm.kernels.estep`)
that hides the packed/exact choice; the rest is written once.
"""

from .covariance import COVARIANCE_TYPES, CovarianceType, covariance_of
from .estep import e_step
from .exact import (
    log_gaussian_density,
    log_responsibilities,
    log_sum_exp,
    weighted_log_density,
)
from .moments import FeatureMoments
from .mstep import log_prior, m_step
from .parameters import GaussianParameters, n_free_parameters
from .prior import ConjugatePrior
from .statistics import SufficientStatistics, block_statistics, merge_all

__all__ = [
    "COVARIANCE_TYPES",
    "ConjugatePrior",
    "CovarianceType",
    "FeatureMoments",
    "GaussianParameters",
    "SufficientStatistics",
    "block_statistics",
    "covariance_of",
    "e_step",
    "log_gaussian_density",
    "log_prior",
    "log_responsibilities",
    "log_sum_exp",
    "m_step",
    "merge_all",
    "n_free_parameters",
    "weighted_log_density",
]
