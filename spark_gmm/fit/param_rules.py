"""Every parameter of the estimator, declared once: name, type, allowed values, default,
meaning, and where a job config sets it.

The rest is derived from :data:`PARAMETERS`: the pyspark Params of the estimator and the
model and their validation (:mod:`spark_gmm.ml.params`), the validation of the fit job's
TOML config (:mod:`spark_gmm.etl.config`), the model-selection grid's checks and the
parameter table in docs/parameters.md (:func:`parameter_table_markdown`). A new parameter
is one more :class:`ParameterRule` here (and its getter and setter on the Spark classes).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..kernels import COVARIANCE_TYPES
from ..kernels.variational import WEIGHT_PRIOR_TYPES

INIT_MODES = ("k-means||", "k-means++", "random")
PRIORS = ("none", "conjugate")
MISSING_FEATURES = ("error", "marginalize")
# pyspark derives its default seed from hash(), which changes between Python processes;
# a fixed default keeps unseeded fits reproducible.
DEFAULT_SEED = 20240531


@dataclass(frozen=True)
class ParameterRule:
    """One parameter: what it is, what it may be, what it means.

    Attributes
    ----------
    name : str
        The Spark param (camelCase).
    type : type
        ``int``, ``float``, ``str``, ``bool`` or ``list`` (of numbers).
    default : object
        None when unset by default.
    meaning : str
        One line for the docs' table and the param's doc.
    minimum : float or None
        Smallest allowed value of a number (excluded when ``exclusive``).
    choices : tuple of str
        The allowed values of a string (empty: any).
    config_key : str
        Where the fit job's TOML sets it (``section.key``); empty when it does not.
    mllib : bool
        MLlib's ``GaussianMixture`` has it too (same name, same meaning).
    estimator_only : bool
        A param of the estimator, not of the fitted model.
    exclusive : bool
        ``minimum`` itself is not allowed.
    below : float or None
        A number must be smaller than this (excluded).
    """

    name: str
    type: type
    default: Any
    meaning: str
    minimum: float | None = None
    choices: tuple[str, ...] = ()
    config_key: str = ""
    mllib: bool = False
    estimator_only: bool = False
    exclusive: bool = False
    below: float | None = None

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (``"must be at least 1"``), or None."""
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if self.type is list:
            finite = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                         and math.isfinite(v) for v in value) if isinstance(
                             value, (list, tuple)) else False
            return None if finite and value else "must be a non-empty list of finite numbers"
        if self.below is not None and not value < self.below:
            return (f"must be > {self.minimum:g} and < {self.below:g}" if self.exclusive
                    else f"must be < {self.below:g}")
        if self.exclusive and not value > self.minimum:
            if self.below is not None:
                return f"must be > {self.minimum:g} and < {self.below:g}"
            return f"must be > {self.minimum:g}"
        if self.minimum is not None and not value >= self.minimum:  # NaN fails too
            if self.type is int:
                return f"must be at least {self.minimum:g}"
            return f"must be >= {self.minimum:g}"
        return None

    def check(self, value: Any, label: str = "") -> None:
        """Raise a ValueError naming the param (or ``label``), the value and what is
        allowed, when ``value`` breaks the rule."""
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(f"{label or self.name} {problem}; got {value!r}")

    @property
    def allowed(self) -> str:
        """The allowed values in words, for the table."""
        if self.choices:
            return ", ".join(f"`{c}`" for c in self.choices)
        if self.type is bool:
            return "`true`, `false`"
        if self.type is list:
            return "finite numbers"
        if self.minimum is not None and self.exclusive:
            upper = "" if self.below is None else f" and < {self.below:g}"
            return f"> {self.minimum:g}{upper}"
        if self.minimum is not None:
            return f"≥ {self.minimum:g}"
        return "any"


PARAMETERS: dict[str, ParameterRule] = {rule.name: rule for rule in (
    ParameterRule("k", int, 2, "number of components", minimum=1, config_key="model.k",
                  mllib=True),
    ParameterRule("covarianceType", str, "full",
                  "covariance per component: `full` [K,D,D], `tied` (one shared) [D,D], "
                  "`diag` [K,D], `spherical` (one variance) [K]",
                  choices=COVARIANCE_TYPES, config_key="model.covariance_type"),
    ParameterRule("maxIter", int, 100, "EM iterations at most", minimum=1,
                  config_key="model.max_iter", mllib=True),
    ParameterRule("tol", float, 1e-3,
                  "stop when the mean per-row log-likelihood (with a prior: log posterior) "
                  "changes by less (scikit-learn's rule; MLlib compares the total "
                  "log-likelihood)", minimum=0,
                  config_key="model.tol", mllib=True),
    ParameterRule("regCovar", float, 1e-6,
                  "added to every covariance diagonal, keeping it positive definite",
                  minimum=0, config_key="model.reg_covar"),
    ParameterRule("initMode", str, "k-means||",
                  "`k-means||` (distributed, on the fit's own passes), `k-means++` (on a "
                  "seeded driver-side sample) or `random` (k distinct rows)",
                  choices=INIT_MODES, config_key="model.init_mode"),
    ParameterRule("nInit", int, 1,
                  "initialisations; the best final log-likelihood wins; all share each pass "
                  "over the data", minimum=1, config_key="model.n_init"),
    ParameterRule("seed", int, DEFAULT_SEED,
                  "same seed and same data give the same model, whatever the partitioning",
                  config_key="model.seed", mllib=True),
    ParameterRule("aggregationDepth", int, 2,
                  "`treeReduce` depth of the statistics when a pass runs as a Spark job of "
                  "its own", minimum=1, config_key="model.aggregation_depth", mllib=True),
    ParameterRule("featuresCol", str, "features",
                  "features: a Vector, `array<double>` or `array<float>` column", mllib=True),
    ParameterRule("weightCol", str, None, "non-negative row weights; unset: all 1",
                  config_key="input.weight_column", mllib=True),
    ParameterRule("predictionCol", str, "prediction", "output: the most likely component",
                  mllib=True),
    ParameterRule("probabilityCol", str, "probability",
                  "output: every component's responsibility (a Vector summing to 1)",
                  mllib=True),
    ParameterRule("logLikelihoodCol", str, None,
                  "output: log p(x) of each row; unset: not added"),
    ParameterRule("prior", str, "none",
                  "`none`: maximum likelihood; `conjugate`: MAP-EM under a normal-inverse-"
                  "Wishart prior (Fraley & Raftery 2007; docs/bayesian.md)",
                  choices=PRIORS, config_key="model.prior"),
    ParameterRule("priorMean", list, None,
                  "conjugate prior's mean μ_P [D]; unset: the weighted mean of the rows",
                  config_key="model.prior_mean"),
    ParameterRule("priorShrinkage", float, 0.01,
                  "κ: the prior on each mean weighs as much as κ rows", minimum=0,
                  exclusive=True, config_key="model.prior_shrinkage"),
    ParameterRule("priorDegreesOfFreedom", float, None,
                  "ν of the covariances' prior (> D − 1 for `full`, `tied`); unset: D + 2",
                  minimum=0, exclusive=True, config_key="model.prior_degrees_of_freedom"),
    ParameterRule("priorScale", list, None,
                  "Λ: 1 value (× identity), D (diagonal) or D×D (row-major); unset: the rows' "
                  "unbiased covariance / K^(2/D) (`diag`: its diagonal, `spherical`: its mean "
                  "diagonal)", config_key="model.prior_scale"),
    ParameterRule("checkpointPath", str, None,
                  "driver-local file of the EM state, rewritten after every iteration; a fit "
                  "that finds its own checkpoint resumes from it", config_key="checkpoint.path",
                  estimator_only=True),
    ParameterRule("balanceRows", bool, True,
                  "spread the stored rows evenly over the task slots whatever the input's "
                  "partitioning: tasks take slices of near-equal rows, and rows skewed "
                  "across hosts (one > 1.5x its share) are stored again evenly, once "
                  "(docs/performance.md#balance); `false`: one task per input partition",
                  config_key="model.balance_rows", estimator_only=True),
    ParameterRule("noise", bool, False,
                  "add a uniform noise component of density 1/V (Banfield & Raftery 1993, "
                  "mclust's `Vinv`): rows from no cluster are labelled −1 instead of "
                  "distorting the Gaussians (docs/real-rows.md)", config_key="model.noise"),
    ParameterRule("noiseVolume", float, None,
                  "V of the noise component, in the units of the features; unset: the "
                  "volume of the training rows' bounding box", minimum=0, exclusive=True,
                  config_key="model.noise_volume"),
    ParameterRule("noiseInitialWeight", float, 0.1,
                  "the noise component's weight when EM starts (the Gaussians share the "
                  "rest in proportion to their initial weights)", minimum=0, exclusive=True,
                  below=1.0, config_key="model.noise_initial_weight"),
    ParameterRule("missingFeatures", str, "error",
                  "`error`: a NaN or null feature makes the row invalid; `marginalize`: it is "
                  "a missing feature, the row weighs by its observed ones' marginal "
                  "(±Inf and rows observing nothing stay invalid; docs/real-rows.md)",
                  choices=MISSING_FEATURES, config_key="input.missing_features"),
    ParameterRule("imputedCol", str, None,
                  "output: the features with each missing entry replaced by its conditional "
                  "mean E[x_m | x_o]; unset: not added"),
)}


# The params BayesianGaussianMixture shares with GaussianMixture (their rules and job-config
# keys above, the meanings of ``maxIter``, ``tol``, ``nInit`` and ``logLikelihoodCol`` in its
# terms), then its priors (scikit-learn's defaults), which the fit job sets with
# ``[model] estimator = "bayesian"``.
_SHARED_WITH_BAYESIAN = ("k", "covarianceType", "maxIter", "tol", "regCovar", "initMode",
                         "nInit", "seed", "aggregationDepth", "featuresCol", "weightCol",
                         "predictionCol", "probabilityCol", "logLikelihoodCol")
_BAYESIAN_MEANINGS = {
    "maxIter": "variational iterations at most",
    "tol": "stop when the lower bound changes by less (scikit-learn's rule)",
    "nInit": "initialisations; the highest final lower bound wins; all share each pass over "
             "the data",
    "logLikelihoodCol": "output: log Σ_k ρ_k of each row (scikit-learn's `score_samples`); "
                        "unset: not added",
}
BAYESIAN_PARAMETERS: dict[str, ParameterRule] = {rule.name: rule for rule in (
    *(replace(PARAMETERS[name],
              meaning=_BAYESIAN_MEANINGS.get(name, PARAMETERS[name].meaning))
      for name in _SHARED_WITH_BAYESIAN),
    ParameterRule("weightConcentrationPriorType", str, "dirichlet_process",
                  "prior of the weights: `dirichlet_process` (stick-breaking, prunes "
                  "components) or `dirichlet_distribution`", choices=WEIGHT_PRIOR_TYPES,
                  config_key="model.weight_concentration_prior_type"),
    ParameterRule("weightConcentrationPrior", float, None,
                  "α₀: small values leave fewer components active; unset: 1/k", minimum=0,
                  exclusive=True, config_key="model.weight_concentration_prior"),
    ParameterRule("meanPrecisionPrior", float, 1.0,
                  "β₀: how strongly the means are pulled to `meanPrior`", minimum=0,
                  exclusive=True, config_key="model.mean_precision_prior"),
    ParameterRule("meanPrior", list, None, "m₀ [D]; unset: the weighted mean of the rows",
                  config_key="model.mean_prior"),
    ParameterRule("degreesOfFreedomPrior", float, None,
                  "ν₀ of the precisions' Wishart (> D − 1); unset: D", minimum=0,
                  exclusive=True, config_key="model.degrees_of_freedom_prior"),
    ParameterRule("covariancePrior", list, None,
                  "Ψ₀: 1 value (× identity), D (diagonal) or D×D (row-major); unset: the rows' "
                  "unbiased covariance (`diag`: its diagonal, `spherical`: its mean diagonal)",
                  config_key="model.covariance_prior"),
)}


def config_rules(section: str, rules: dict[str, ParameterRule] | None = None
                 ) -> Iterator[tuple[str, ParameterRule]]:
    """(key, rule) of every parameter the job config sets in ``[section]``, of
    :data:`PARAMETERS` (or of ``rules``: :data:`BAYESIAN_PARAMETERS`)."""
    for rule in (PARAMETERS if rules is None else rules).values():
        if rule.config_key.startswith(section + "."):
            yield rule.config_key.split(".", 1)[1], rule


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default(rule: ParameterRule) -> str:
    if rule.default is None:
        return "unset"
    if rule.type is bool:
        return f"`{str(rule.default).lower()}`"
    if rule.type is str:
        return f"`{rule.default}`"
    return f"{rule.default:g}" if rule.type is float else str(rule.default)


def parameter_table_markdown(rules: dict[str, ParameterRule] | None = None) -> str:
    """The parameter table of docs/parameters.md (Markdown), one row per
    :data:`PARAMETERS` entry (or per entry of ``rules``: :data:`BAYESIAN_PARAMETERS`)."""
    lines = ["| param | type | default | allowed | job config | meaning |",
             "|---|---|---|---|---|---|"]
    for rule in (PARAMETERS if rules is None else rules).values():
        key = f"`{rule.config_key}`" if rule.config_key else ""
        lines.append("| " + " | ".join(_cell(c) for c in (
            f"`{rule.name}`", rule.type.__name__, _default(rule), rule.allowed, key,
            rule.meaning + (" (estimator only)" if rule.estimator_only else ""))) + " |")
    return "\n".join(lines) + "\n"
