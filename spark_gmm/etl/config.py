"""Job configuration: TOML (stdlib ``tomllib``) into frozen dataclasses, strictly validated.

Unknown keys, wrong types and impossible values raise :class:`ConfigError` naming the key.
``--set section.key=value`` overrides are parsed as TOML values (strings may be bare).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin, get_type_hints

from ..errors import ConfigError, cause_in_words
from ..fit.param_rules import (
    BAYESIAN_PARAMETERS,
    MISSING_FEATURES,
    PARAMETERS,
    ParameterRule,
    config_rules,
)
from ..ml.selection import CRITERIA
from .estimator_keys import ESTIMATOR_RULES, ESTIMATORS, check_estimator_keys

INVALID_ROW_POLICIES = ("error", "skip", "quarantine")
# Keys whose value is a list of numbers (priorMean, priorScale, ...), by their config key.
_NUMBER_LISTS = {rule.config_key: rule for rules in ESTIMATOR_RULES.values()
                 for rule in rules.values() if rule.type is list and rule.config_key}
INPUT_FORMATS = ("parquet", "csv", "table")
__all__ = ["ConfigError", "JobConfig", "build_config", "load_config"]


@dataclass(frozen=True)
class InputConfig:
    """Where rows come from and which columns are features."""

    path: str = ""
    format: str = "parquet"
    table: str = ""
    features: tuple[str, ...] = ()
    features_column: str = ""
    weight_column: str = ""
    passthrough: tuple[str, ...] = ()
    # Score job: label only the files that arrived since the last run (output.checkpoint_path
    # remembers which), each micro-batch of at most max_files_per_batch files (0: no limit).
    stream: bool = False
    max_files_per_batch: int = 0
    # "marginalize": NaN/null features are missing, not invalid (docs/real-rows.md).
    missing_features: str = PARAMETERS["missingFeatures"].default


# The [model] keys that may hold several values to choose from.
_SEVERAL = ("k", "covariance_type")


def _default(name: str, rules: dict[str, ParameterRule] = PARAMETERS) -> Any:
    return rules[name].default


@dataclass(frozen=True)
class ModelConfig:
    """Estimator parameters (snake_case here, camelCase on the Spark API); their defaults
    and allowed values are those of :data:`~spark_gmm.fit.param_rules.PARAMETERS`."""

    # One value, or several to choose from by ``criterion`` (k also as {min, max}).
    k: int | tuple[int, ...] = _default("k")
    covariance_type: str | tuple[str, ...] = _default("covarianceType")
    criterion: str = "bic"
    max_iter: int = _default("maxIter")
    tol: float = _default("tol")
    reg_covar: float = _default("regCovar")
    init_mode: str = _default("initMode")
    n_init: int = _default("nInit")
    seed: int = _default("seed")
    aggregation_depth: int = _default("aggregationDepth")
    # MAP-EM (docs/bayesian.md): prior = "conjugate"; unset hyperparameters from the data.
    prior: str = _default("prior")
    prior_mean: tuple[float, ...] | None = None
    prior_shrinkage: float = _default("priorShrinkage")
    prior_degrees_of_freedom: float | None = None
    prior_scale: tuple[float, ...] | None = None
    # Spread the stored rows over the task slots whatever the input's partitioning.
    balance_rows: bool = _default("balanceRows")
    # A uniform noise component (docs/real-rows.md): V unset = the rows' bounding box.
    noise: bool = _default("noise")
    noise_volume: float | None = None
    noise_initial_weight: float = _default("noiseInitialWeight")
    # "bayesian": BayesianGaussianMixture (docs/bayesian.md) with the priors below.
    estimator: str = "mixture"
    weight_concentration_prior_type: str = _default("weightConcentrationPriorType",
                                                    BAYESIAN_PARAMETERS)
    weight_concentration_prior: float | None = None
    mean_precision_prior: float = _default("meanPrecisionPrior", BAYESIAN_PARAMETERS)
    mean_prior: tuple[float, ...] | None = None
    degrees_of_freedom_prior: float | None = None
    covariance_prior: tuple[float, ...] | None = None
    path: str = ""
    # A previous model artifact to start EM from (same features, standardisation, k, type).
    warm_start: str = ""

    @property
    def k_values(self) -> tuple[int, ...]:
        return self.k if isinstance(self.k, tuple) else (self.k,)

    @property
    def covariance_types(self) -> tuple[str, ...]:
        return (self.covariance_type if isinstance(self.covariance_type, tuple)
                else (self.covariance_type,))

    @property
    def selects(self) -> bool:
        """Whether the job fits several (k, covariance type) pairs and keeps the best."""
        return len(self.k_values) * len(self.covariance_types) > 1


@dataclass(frozen=True)
class PreprocessConfig:
    """What happens to rows before fitting."""

    invalid_rows: str = "error"
    quarantine_path: str = ""
    standardize: bool = False


@dataclass(frozen=True)
class OutputConfig:
    """Labelled Parquet output."""

    path: str = ""
    partition_by: tuple[str, ...] = ()
    model_id: str = ""
    outlier_quantile: float = 0.0
    # With input.stream: where the score job records the files it has labelled.
    checkpoint_path: str = ""
    # A column of the features with missing entries at E[x_m | x_o] (docs/real-rows.md).
    imputed_column: str = ""


@dataclass(frozen=True)
class CheckpointConfig:
    """EM checkpoint file (driver-local); empty path disables checkpoints."""

    path: str = ""


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the drift checks (:mod:`spark_gmm.etl.drift`), and what the fit job
    records for them."""

    enabled: bool = False                 # the score job checks its rows after labelling
    max_log_likelihood_drop: float = 1.0  # in standard deviations of the training rows'
    max_psi: float = 0.2                  # population stability of the component shares
    low_quantile: float = 0.01            # (fit job) training log-density quantile kept
    max_low_share: float = 0.05           # share of new rows below it


@dataclass(frozen=True)
class ReportConfig:
    """The fit report (:mod:`spark_gmm.report`) and the sample of rows it draws."""

    enabled: bool = False  # the fit job writes report.html (needs the ``report`` extra)
    path: str = ""  # a local directory; default: the artifact's report/ (a local model.path)
    # Training rows (in the model's units) kept in the artifact for the report's row figures;
    # 0 keeps no rows in the artifact (the report then shows the model alone).
    sample_rows: int = 5000


def is_local(path: str) -> bool:
    """A path of this machine's file system (no scheme, or ``file:``)."""
    return "://" not in path or path.startswith("file:")


@dataclass(frozen=True)
class SparkConfig:
    """Session settings for jobs run without spark-submit (spark-submit's win otherwise)."""

    master: str = ""
    # A Spark Connect address (sc://HOST:PORT): the jobs run as a Connect client.
    remote: str = ""
    app_name: str = "spark-gmm"
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobConfig:
    input: InputConfig = field(default_factory=InputConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _k_values(value: Any) -> int | tuple[int, ...]:
    def integer(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if integer(value):
        return value
    if isinstance(value, (list, tuple)) and value and all(integer(v) for v in value):
        return tuple(value)
    if (isinstance(value, dict) and set(value) == {"min", "max"}
            and all(integer(v) for v in value.values()) and value["min"] <= value["max"]):
        return tuple(range(value["min"], value["max"] + 1))
    raise ConfigError(f"model.k must be an integer, a list of integers or {{min = A, max = B}} "
                      f"with A <= B; got {value!r}")


def _names(key: str, value: Any) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{key} must be a name or a list of names; got {value!r}")


def _convert(key: str, value: Any, annotation: Any) -> Any:
    if key == "model.k":
        return _k_values(value)
    if key == "model.covariance_type":
        return _names(key, value)
    if value is None and type(None) in get_args(annotation):  # unset (TOML has no null:
        return None                                               # a to_dict round trip)
    if key in _NUMBER_LISTS:  # checked by its rule; a tuple of floats
        problem = _NUMBER_LISTS[key].problem(value)
        if problem is not None:
            raise ConfigError(f"{key} {problem}; got {value!r}")
        return tuple(float(v) for v in value)
    if type(None) in get_args(annotation):  # unset by default: the declared type when set
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    origin = get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings; got {value!r}")
        return tuple(value)
    if (origin is not None and origin.__name__ == "Mapping") or annotation is Mapping:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table of strings; got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    expected = annotation
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
        raise ConfigError(f"{key} must be of type {expected.__name__}; got {value!r}")
    return value


def _section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table; got {raw!r}")
    hints = get_type_hints(cls)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(
            f"unknown key {name}.{unknown[0]}; valid keys in [{name}]: {', '.join(sorted(hints))}"
        )
    values = {k: _convert(f"{name}.{k}", v, hints[k]) for k, v in raw.items()}
    return cls(**values)


def _check(config: JobConfig) -> None:
    def require(condition: bool, message: str) -> None:
        if not condition:
            raise ConfigError(message)

    m, p, o, i = config.model, config.preprocess, config.output, config.input
    require(m.estimator in ESTIMATORS, f"model.estimator must be one of "
            f"{', '.join(ESTIMATORS)}; got {m.estimator!r}")
    check_estimator_keys(config, JobConfig())
    # the chosen estimator's rules, by their TOML keys
    for key, rule in config_rules("model", ESTIMATOR_RULES[m.estimator]):
        value = getattr(m, key)
        if value is None or rule.type is list:  # unset, or checked as it was read
            continue
        for one in value if isinstance(value, tuple) else (value,):
            problem = rule.problem(one)
            listed = " (or a list of them)" if rule.choices and key in _SEVERAL else ""
            require(problem is None, f"model.{key} {problem}{listed}; got {value!r}")
    require(not (m.warm_start and m.selects),
            "model.warm_start continues one model; it cannot be combined with several "
            "model.k or model.covariance_type values")
    d = config.drift
    require(0.0 < d.low_quantile < 0.5, f"drift.low_quantile must be in (0, 0.5); got "
            f"{d.low_quantile}")
    require(min(d.max_log_likelihood_drop, d.max_psi, d.max_low_share) > 0,
            "drift thresholds (max_log_likelihood_drop, max_psi, max_low_share) must be > 0")
    require(m.criterion in CRITERIA,
            f"model.criterion must be one of {', '.join(CRITERIA)}; got {m.criterion!r}")
    require(p.invalid_rows in INVALID_ROW_POLICIES,
            f"preprocess.invalid_rows must be one of {', '.join(INVALID_ROW_POLICIES)}; "
            f"got {p.invalid_rows!r}")
    require(p.invalid_rows != "quarantine" or bool(p.quarantine_path),
            "preprocess.invalid_rows = 'quarantine' needs preprocess.quarantine_path")
    require(0.0 <= o.outlier_quantile < 1.0,
            f"output.outlier_quantile must be in [0, 1); got {o.outlier_quantile}")
    require(i.format in INPUT_FORMATS,
            f"input.format must be one of {', '.join(INPUT_FORMATS)}; got {i.format!r}")
    require(bool(i.features) != bool(i.features_column),
            "set exactly one of input.features (list of numeric columns) or "
            "input.features_column (one Vector/array column)")
    require(bool(i.table) if i.format == "table" else bool(i.path),
            "input.table is required when input.format = 'table'" if i.format == "table"
            else "input.path is required (a Parquet/CSV file, directory or glob)")
    r = config.report
    require(r.sample_rows >= 0, f"report.sample_rows must be >= 0; got {r.sample_rows}")
    require(not r.enabled or bool(r.path) or not m.path or is_local(m.path),
            f"report.path must name a local directory when model.path ({m.path!r}) is not "
            "local: the report is HTML written on the driver")
    require(not r.path or is_local(r.path),
            f"report.path must be a local directory; got {r.path!r}")
    require(not i.stream or i.format in ("parquet", "csv"),
            f"input.stream reads new files: input.format must be 'parquet' or 'csv'; got "
            f"{i.format!r}")
    require(not i.stream or bool(o.checkpoint_path),
            "input.stream = true needs output.checkpoint_path (where the score job records "
            "the files it has labelled)")
    require(i.missing_features in MISSING_FEATURES,
            f"input.missing_features must be one of {', '.join(MISSING_FEATURES)}; got "
            f"{i.missing_features!r}")
    require(i.missing_features == "error" or m.estimator == "mixture",
            "input.missing_features = 'marginalize' needs [model] estimator = 'mixture'")
    require(not o.imputed_column or m.estimator == "mixture",
            "output.imputed_column needs [model] estimator = 'mixture'")
    require(i.max_files_per_batch >= 0,
            f"input.max_files_per_batch must be >= 0 (0: no limit); got "
            f"{i.max_files_per_batch}")
    require(len(set(i.features)) == len(i.features),
            f"input.features lists a column twice: {list(i.features)}")


def _parse_override(assignment: str) -> tuple[list[str], Any]:
    if "=" not in assignment:
        raise ConfigError(f"--set expects section.key=value; got {assignment!r}")
    key, text = assignment.split("=", 1)
    path = key.strip().split(".")
    if len(path) < 2:
        raise ConfigError(f"--set key must be section.key; got {key!r}")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare string such as output.path=/data/out
    return path, value


def build_config(raw: Mapping[str, Any], overrides: Sequence[str] = ()) -> JobConfig:
    """A validated :class:`JobConfig` from parsed TOML plus ``--set`` overrides."""
    data: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for assignment in overrides:
        path, value = _parse_override(assignment)
        table = data.setdefault(path[0], {})
        for part in path[1:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = value
    sections = get_type_hints(JobConfig)
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}]; valid sections: "
                          f"{', '.join(sorted(sections))}")
    config = JobConfig(**{name: _section(name, sections[name], data.get(name, {}))
                          for name in sections})
    _check(config)
    return config


def load_config(path: str, overrides: Sequence[str] = ()) -> JobConfig:
    """Read and validate a TOML config file."""
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} not found") from None
    except OSError as error:  # permission denied, a directory
        raise ConfigError(f"config file {path!r} cannot be read ({cause_in_words(error)}); "
                          "check --config") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path!r} is not valid TOML: {error}") from None
    return build_config(raw, overrides)
