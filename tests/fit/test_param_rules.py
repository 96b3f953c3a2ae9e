"""Each parameter is declared once (spark_gmm.fit.param_rules.PARAMETERS): the Spark params,
their validation, the job config's validation and the table in docs/parameters.md all follow it."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.cli import main
from spark_gmm.errors import ConfigError
from spark_gmm.etl.config import ModelConfig, build_config
from spark_gmm.fit.initialization import initial_mixtures_together
from spark_gmm.ml.params import PARAMETERS, parameter_table_markdown

PARAMETER_DOCS = Path(__file__).resolve().parents[2] / "docs" / "parameters.md"
START, END = "<!-- parameters:start -->", "<!-- parameters:end -->"
BASE = {"input": {"path": "x", "features": ["a"]}}


def _bad_values(rule) -> list:
    if rule.choices:
        return ["no-such-" + rule.name]
    if rule.type is int:
        return [int(rule.minimum) - 1]
    return [rule.minimum - 1e-9, math.nan] + ([rule.below] if rule.below is not None else [])


def _boundary(rule):
    # The last choice, the minimum, or just above an excluded minimum.
    if rule.choices:
        return rule.choices[-1]
    return math.nextafter(rule.minimum, math.inf) if rule.exclusive else rule.type(rule.minimum)


CHECKED = [rule for rule in PARAMETERS.values() if rule.choices or rule.minimum is not None]
LISTS = [rule for rule in PARAMETERS.values() if rule.type is list]


def test_the_checked_rules_are_the_expected_ones() -> None:
    assert {rule.name for rule in CHECKED} == {"k", "covarianceType", "maxIter", "tol",
                                               "regCovar", "initMode", "nInit",
                                               "aggregationDepth", "prior", "priorShrinkage",
                                               "priorDegreesOfFreedom", "noiseVolume",
                                               "noiseInitialWeight", "missingFeatures"}
    assert {rule.name for rule in LISTS} == {"priorMean", "priorScale"}


@pytest.mark.parametrize("rule", LISTS, ids=lambda rule: rule.name)
def test_number_lists_are_checked_in_the_params_and_the_job_config(rule) -> None:
    section, key = rule.config_key.split(".")
    for value in ([], [1.0, math.nan], [1.0, math.inf]):
        with pytest.raises(ValueError, match=rf"^{rule.name} must be a non-empty list of "
                                             "finite numbers; got "):
            GaussianMixture()._set(**{rule.name: value})._validate_params()
    for value in ([], [1.0, math.nan], ["a"], 3.0):
        with pytest.raises(ConfigError, match=rf"^{section}\.{key} must be a non-empty list"):
            build_config({**BASE, section: {key: value}})
    GaussianMixture()._set(**{rule.name: [1, 2.5]})._validate_params()
    assert getattr(build_config({**BASE, section: {key: [1, 2.5]}}).model, key) == (1.0, 2.5)


def test_spark_params_follow_the_declaration() -> None:
    estimator, model = GaussianMixture(), GaussianMixtureModel()
    for rule in PARAMETERS.values():
        for params in (estimator,) if rule.estimator_only else (estimator, model):
            assert params.hasParam(rule.name), rule.name
            param = params.getParam(rule.name)
            if rule.default is None:
                assert not params.isDefined(param), rule.name
            else:
                assert params.getOrDefault(param) == rule.default, rule.name
        if rule.estimator_only:
            assert not model.hasParam(rule.name)
    assert {p.name for p in estimator.params} == set(PARAMETERS)
    # The constructor takes each parameter, showing its declared default (None: unset).
    signature = inspect.signature(GaussianMixture.__init__).parameters
    assert set(signature) - {"self"} == set(PARAMETERS)
    for rule in PARAMETERS.values():
        assert signature[rule.name].default in (rule.default, None), rule.name


@pytest.mark.parametrize("rule", CHECKED, ids=lambda rule: rule.name)
def test_params_validation_names_the_param_the_value_and_what_is_allowed(rule) -> None:
    for value in _bad_values(rule):
        estimator = GaussianMixture()._set(**{rule.name: value})
        with pytest.raises(ValueError) as raised:
            estimator._validate_params()
        message = str(raised.value)
        assert message.startswith(f"{rule.name} must be ")
        assert repr(value) in message
        for allowed in rule.choices or (f"{rule.minimum:g}",):
            assert allowed in message
    GaussianMixture()._set(**{rule.name: _boundary(rule)})._validate_params()


@pytest.mark.parametrize("rule", [r for r in CHECKED if r.config_key],
                         ids=lambda rule: rule.name)
def test_job_config_validation_follows_the_same_rules(rule) -> None:
    section, key = rule.config_key.split(".")
    for value in _bad_values(rule):
        with pytest.raises(ConfigError, match=rf"^{section}\.{key} must be .*got "):
            build_config({**BASE, section: {**BASE.get(section, {}), key: value}})
    build_config({**BASE, section: {**BASE.get(section, {}), key: _boundary(rule)}})


def test_job_config_defaults_are_the_estimators() -> None:
    config, estimator = ModelConfig(), GaussianMixture()
    for rule in PARAMETERS.values():
        if rule.config_key.startswith("model."):
            key = rule.config_key.split(".")[1]
            default = (estimator.getOrDefault(rule.name) if estimator.isDefined(rule.name)
                       else None)
            assert getattr(config, key) == default, key


def test_the_fit_rejects_an_undeclared_init_mode() -> None:
    with pytest.raises(ValueError, match=re.escape(
            "initMode must be one of k-means||, k-means++, random; got 'magic'")):
        initial_mixtures_together([], ["magic"])


def test_the_table_has_a_row_per_parameter_and_the_cli_prints_it(capsys) -> None:
    table = parameter_table_markdown()
    rows = table.strip().splitlines()[2:]
    assert [re.match(r"\| `(\w+)` \|", row).group(1) for row in rows] == list(PARAMETERS)
    assert all(row.count(" | ") == 5 for row in rows)  # six cells: no unescaped '|'
    assert "| `initMode` | str | `k-means\\|\\|` |" in table
    assert main(["params"]) == 0
    assert capsys.readouterr().out == table


def test_the_docs_hold_the_generated_table() -> None:
    text = PARAMETER_DOCS.read_text()
    between = text[text.index(START) + len(START):text.index(END)]
    assert between.strip("\n") == parameter_table_markdown().strip("\n"), (
        "regenerate docs/parameters.md's table with `spark-gmm params`")


def test_the_docs_hold_the_generated_bayesian_table() -> None:
    from spark_gmm.fit.param_rules import BAYESIAN_PARAMETERS

    text = PARAMETER_DOCS.read_text()
    start, end = "<!-- bayesian-parameters:start -->", "<!-- bayesian-parameters:end -->"
    between = text[text.index(start) + len(start):text.index(end)]
    assert between.strip("\n") == parameter_table_markdown(BAYESIAN_PARAMETERS).strip("\n"), (
        "regenerate docs/parameters.md's Bayesian table with `spark-gmm params --bayesian`")


def test_the_bayesian_estimator_has_the_declared_params() -> None:
    from spark_gmm import BayesianGaussianMixture, BayesianGaussianMixtureModel
    from spark_gmm.fit.param_rules import BAYESIAN_PARAMETERS

    for params in (BayesianGaussianMixture(), BayesianGaussianMixtureModel()):
        assert {p.name for p in params.params} == set(BAYESIAN_PARAMETERS)
        for rule in BAYESIAN_PARAMETERS.values():
            if rule.default is None:
                assert not params.isDefined(rule.name), rule.name
            else:
                assert params.getOrDefault(rule.name) == rule.default, rule.name
    # The shared params keep GaussianMixture's rules and job-config keys; maxIter, tol and
    # nInit speak of the lower bound.
    assert BAYESIAN_PARAMETERS["regCovar"] == PARAMETERS["regCovar"]
    assert "lower bound" in BAYESIAN_PARAMETERS["tol"].meaning
    with pytest.raises(ValueError, match=r"^weightConcentrationPrior must be > 0; got 0\.0"):
        BayesianGaussianMixture(weightConcentrationPrior=0.0)._validate_params()
