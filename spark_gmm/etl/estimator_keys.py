"""``[model] estimator``: which job-config keys each estimator takes, from its parameter
declaration (``PARAMETERS`` for ``"mixture"``, ``BAYESIAN_PARAMETERS`` for ``"bayesian"``),
and the check that a config sets none of the other estimator's."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..fit.param_rules import BAYESIAN_PARAMETERS, PARAMETERS, ParameterRule

ESTIMATORS = ("mixture", "bayesian")
ESTIMATOR_RULES: dict[str, dict[str, ParameterRule]] = {"mixture": PARAMETERS,
                                                        "bayesian": BAYESIAN_PARAMETERS}
_CLASSES = {"mixture": "GaussianMixture", "bayesian": "BayesianGaussianMixture"}


def estimator_keys(estimator: str) -> set[str]:
    """The config keys (``section.key``) of ``estimator``'s declared parameters, and the
    model keys only the mixture has (a model selection, a warm start)."""
    keys = {rule.config_key for rule in ESTIMATOR_RULES[estimator].values()
            if rule.config_key}
    return keys | ({"model.criterion", "model.warm_start"} if estimator == "mixture" else set())


def check_estimator_keys(config: Any, defaults: Any) -> None:
    """Raise when ``config`` (a ``JobConfig``) sets a key of the estimator it does not choose
    to another value than ``defaults`` (a default ``JobConfig``) has, or several k or
    covariance types for the Bayesian estimator (k is its upper bound: it chooses itself).

    Raises
    ------
    ConfigError
        Naming the key and both estimators.
    """
    chosen = config.model.estimator
    other = next(e for e in ESTIMATORS if e != chosen)
    for key in sorted(estimator_keys(other) - estimator_keys(chosen)):
        section, name = key.split(".")
        # (a declared key the config does not read yet is never set: both None)
        value = getattr(getattr(config, section), name, None)
        if value != getattr(getattr(defaults, section), name, None):
            raise ConfigError(
                f"{key} is a key of model.estimator = '{other}' ({_CLASSES[other]}); "
                f"model.estimator = '{chosen}' ({_CLASSES[chosen]}) does not take it: "
                f"remove it, or set model.estimator = '{other}'")
    if chosen == "bayesian" and config.model.selects:
        raise ConfigError(
            "model.estimator = 'bayesian' fits one model: set one model.k (an upper bound: "
            "the components the rows do not support get weights near 0) and one "
            "model.covariance_type")
