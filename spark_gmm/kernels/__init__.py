"""Pure-numpy numerics of Gaussian mixtures; this package never imports pyspark."""

from .covariance import COVARIANCE_TYPES, KERNELS, kernels_for, n_free_parameters
from .errors import CovarianceError
from .estep import (
    log_gaussian_density,
    log_responsibilities,
    log_sum_exp,
    score_rows,
    weighted_log_density,
)
from .mstep import m_step
from .parameters import GaussianParameters
from .statistics import SufficientStatistics, block_statistics, merge_all

__all__ = [
    "COVARIANCE_TYPES",
    "KERNELS",
    "CovarianceError",
    "GaussianParameters",
    "SufficientStatistics",
    "block_statistics",
    "kernels_for",
    "log_gaussian_density",
    "log_responsibilities",
    "log_sum_exp",
    "m_step",
    "merge_all",
    "n_free_parameters",
    "score_rows",
    "weighted_log_density",
]
