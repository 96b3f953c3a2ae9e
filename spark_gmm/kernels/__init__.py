"""Pure-numpy numerics of Gaussian mixtures: this package never imports pyspark or pyarrow.

Everything that differs between covariance types is in one table,
:data:`~spark_gmm.kernels.covariance.KERNELS`; the rest is written once.
"""

from .covariance import COVARIANCE_TYPES, KERNELS, kernels_for, n_free_parameters
from .estep import (
    log_gaussian_density,
    log_responsibilities,
    log_sum_exp,
    weighted_log_density,
)
from .moments import FeatureMoments
from .mstep import m_step
from .parameters import GaussianParameters
from .split import score_rows
from .statistics import SufficientStatistics, block_statistics, merge_all

__all__ = [
    "COVARIANCE_TYPES",
    "KERNELS",
    "FeatureMoments",
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
