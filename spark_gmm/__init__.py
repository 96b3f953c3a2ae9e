"""spark-gmm: Gaussian Mixture Models fitted by distributed EM on Apache Spark."""

__version__ = "0.1.0"

from .data import InvalidInputError
from .estimator import GaussianMixture
from .kernels import CovarianceError
from .model import GaussianMixtureModel, GaussianMixtureSummary

__all__ = [
    "CovarianceError",
    "GaussianMixture",
    "GaussianMixtureModel",
    "GaussianMixtureSummary",
    "InvalidInputError",
    "__version__",
]
