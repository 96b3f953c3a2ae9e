"""spark-gmm: Gaussian Mixture Models fitted by distributed EM on Apache Spark.

The public names below are imported on first use (PEP 562), so that importing a room that
needs no Spark, such as ``spark_gmm.kernels`` (numpy only), loads neither pyspark nor pyarrow.

Rooms, each importing only from the rooms below it::

    etl/, bench/, cli.py   jobs, benchmark, command line
    ml/                    the pyspark.ml API: params, estimator, model, persistence
    fit/                   the EM loop, initialisation, checkpoints (driver side)
    runtime/               executor machinery: ingest, block store, statistics passes
    kernels/               pure numpy numerics
    errors.py              every public exception
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

from .version import __version__

_PUBLIC = {
    "BayesianGaussianMixture": "spark_gmm.ml.bayesian",
    "BayesianGaussianMixtureModel": "spark_gmm.ml.bayesian_model",
    "BayesianGaussianMixtureSummary": "spark_gmm.ml.bayesian_model",
    "GaussianMixture": "spark_gmm.ml.estimator",
    "GaussianMixtureModel": "spark_gmm.ml.model",
    "GaussianMixtureSummary": "spark_gmm.ml.summary",
    "ModelSelection": "spark_gmm.ml.selection",
    "select_model": "spark_gmm.ml.selection",
    "CovarianceError": "spark_gmm.errors",
    "InvalidInputError": "spark_gmm.errors",
    "ModelFormatError": "spark_gmm.errors",
    "CheckpointMismatchError": "spark_gmm.errors",
    "NonFiniteLikelihoodError": "spark_gmm.errors",
    "ConfigError": "spark_gmm.errors",
}

__all__ = [
    "BayesianGaussianMixture",
    "BayesianGaussianMixtureModel",
    "BayesianGaussianMixtureSummary",
    "CheckpointMismatchError",
    "ConfigError",
    "CovarianceError",
    "GaussianMixture",
    "GaussianMixtureModel",
    "GaussianMixtureSummary",
    "InvalidInputError",
    "ModelFormatError",
    "ModelSelection",
    "NonFiniteLikelihoodError",
    "__version__",
    "select_model",
]

if TYPE_CHECKING:
    from .errors import (
        CheckpointMismatchError,
        ConfigError,
        CovarianceError,
        InvalidInputError,
        ModelFormatError,
        NonFiniteLikelihoodError,
    )
    from .ml.bayesian import BayesianGaussianMixture
    from .ml.bayesian_model import BayesianGaussianMixtureModel, BayesianGaussianMixtureSummary
    from .ml.estimator import GaussianMixture
    from .ml.model import GaussianMixtureModel
    from .ml.selection import ModelSelection, select_model
    from .ml.summary import GaussianMixtureSummary


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'spark_gmm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


# Models and pipelines saved before the layered layout name their classes by the old module
# paths (pyspark.ml's readers import them from the saved metadata); those paths still load.
_MOVED_MODULES = {"spark_gmm.model": "spark_gmm.ml.model",
                  "spark_gmm.estimator": "spark_gmm.ml.estimator"}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> None:
        return None  # a placeholder, replaced by the moved module below

    def exec_module(self, module: Any) -> None:
        # The import system returns whatever sys.modules holds for the name after this call.
        sys.modules[module.__name__] = importlib.import_module(_MOVED_MODULES[module.__name__])


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
