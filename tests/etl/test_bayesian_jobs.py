"""The fit and score jobs with ``[model] estimator = "bayesian"`` (BayesianGaussianMixture):
one real fit job on a small Parquet file, shared by the tests of its outputs, its score job
(batch, stream, drift) and its report; the config's checks need no Spark."""

from __future__ import annotations

import base64
import io
import json
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gmm import BayesianGaussianMixture, BayesianGaussianMixtureModel
from spark_gmm.errors import ConfigError, InvalidInputError
from spark_gmm.etl.config import ModelConfig, build_config
from spark_gmm.fit.param_rules import BAYESIAN_PARAMETERS, PARAMETERS
from tests.helpers import make_mixture

BASE = {"input": {"path": "x.parquet", "features": ["a", "b"]}}
GENERATING = 3  # components of make_mixture's rows
K = 6  # the fit's upper bound


def _write(path, x: np.ndarray, first_id: int = 0) -> str:
    pq.write_table(pa.table({"id": np.arange(len(x)) + first_id, "a": x[:, 0], "b": x[:, 1],
                             "c": x[:, 2]}), str(path))
    return str(path)


def _raw(directory, data: str, **sections) -> dict:
    raw = {"input": {"path": data, "features": ["a", "b", "c"]},
           "model": {"estimator": "bayesian", "k": K, "weight_concentration_prior": 0.01,
                     "init_mode": "k-means++", "seed": 5, "max_iter": 300, "tol": 1e-6,
                     "path": str(directory / "model")},
           "output": {"path": str(directory / "labelled"), "outlier_quantile": 0.05}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


@pytest.fixture(scope="module")
def fitted(spark, tmp_path_factory):
    """One fit job: (rows, generating labels, config, its report, the directory)."""
    from spark_gmm.etl.fit_job import run_fit

    directory = tmp_path_factory.mktemp("bayesian_job")
    x, labels, _, _ = make_mixture(n=600, seed=41, k=GENERATING)
    config = build_config(_raw(directory, _write(directory / "in.parquet", x),
                               report={"enabled": True, "sample_rows": 300}))
    return x, labels, config, run_fit(spark, config), directory


def _labelled(path: str):
    return pq.read_table(path).to_pandas().sort_values("id")


def _sklearn_of(model: BayesianGaussianMixtureModel):
    """scikit-learn's BayesianGaussianMixture holding ``model``'s posterior: its own
    predict, predict_proba and score_samples are the reference."""
    from sklearn.mixture import BayesianGaussianMixture as Reference
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    kind = model.getCovarianceType()
    reference = Reference(n_components=model.getK(), covariance_type=kind,
                          weight_concentration_prior_type=model.getWeightConcentrationPriorType())
    concentration = model.weightConcentration
    reference.weight_concentration_ = (tuple(concentration) if concentration.ndim == 2
                                       else concentration)
    reference.mean_precision_ = model.meanPrecision
    reference.means_ = model.means
    reference.degrees_of_freedom_ = (model.degreesOfFreedom[0] if kind == "tied"
                                     else model.degreesOfFreedom)
    reference.covariances_ = model.covariances
    reference.precisions_cholesky_ = _compute_precision_cholesky(model.covariances, kind)
    reference.n_features_in_ = model.numFeatures
    return reference


def test_the_fit_job_prunes_to_the_generating_components(fitted) -> None:
    x, labels, config, report, _ = fitted
    assert report["estimator"] == "bayesian"
    assert report["effective_components"] == GENERATING
    weights = np.array(report["weights"])
    assert len(weights) == K
    assert report["pruned_components"] == [j for j in range(K) if weights[j] <= 0.01]
    assert report["rows_read"] == report["rows_labelled"] == len(x)
    diagnostics = json.load(open(os.path.join(config.model.path, "diagnostics.json")))
    assert diagnostics["lower_bound"] == diagnostics["lower_bound_history"][-1]
    assert len(diagnostics["lower_bound_history"]) == diagnostics["num_iter"]
    assert np.all(np.diff(diagnostics["lower_bound_history"]) > -1e-6)  # VB never lowers it
    assert not {"bic", "aic", "icl", "log_likelihood"} & set(diagnostics)
    assert sum(diagnostics["cluster_sizes"]) == len(x)
    # the effective components are the generating ones: one each, the same rows
    frame = _labelled(config.output.path)
    predicted = frame["prediction"].to_numpy()
    for component in range(GENERATING):
        assert len(set(predicted[labels == component])) == 1
    assert len(set(predicted)) == GENERATING


def test_the_labels_are_scikit_learn_s_for_the_saved_posterior(fitted) -> None:
    x, _, config, report, _ = fitted
    model = BayesianGaussianMixtureModel.load(os.path.join(config.model.path, "model"))
    reference = _sklearn_of(model)
    frame = _labelled(config.output.path)
    np.testing.assert_array_equal(frame["prediction"].to_numpy(), reference.predict(x))
    np.testing.assert_allclose(np.stack(frame["probability"]), reference.predict_proba(x),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(frame["log_likelihood"].to_numpy(), reference.score_samples(x),
                               rtol=1e-10)
    # the outlier threshold is the training rows' 5 % quantile of that log-likelihood
    assert 0.02 < frame["is_outlier"].mean() < 0.08
    # the diagnostics' weights are the posterior's expected weights (scikit-learn's weights_)
    a, b = model.weightConcentration
    sticks = a / (a + b)
    expected = sticks * np.concatenate([[1.0], np.cumprod(1 - sticks)[:-1]])
    np.testing.assert_allclose(report["weights"], expected / expected.sum(), rtol=1e-10)


def test_the_score_job_loads_the_bayesian_artifact(spark, fitted) -> None:
    from spark_gmm.etl.score_job import run_score

    x, _, config, report, directory = fitted
    fit_frame = _labelled(config.output.path)
    raw = _raw(directory, config.input.path, output={"path": str(directory / "scored")},
               drift={"enabled": True})
    scored = run_score(spark, build_config(raw))
    frame = _labelled(str(directory / "scored"))
    np.testing.assert_array_equal(frame["prediction"].to_numpy(), fit_frame["prediction"])
    np.testing.assert_array_equal(frame["log_likelihood"].to_numpy(),
                                  fit_frame["log_likelihood"])
    drift = scored["drift"]  # the training rows themselves: the training statistics
    assert not drift["drifted"]
    assert drift["log_likelihood"]["mean"] == pytest.approx(
        drift["log_likelihood"]["training_mean"], rel=1e-9)
    assert drift["component_shares"]["weights"] == pytest.approx(report["weights"], rel=1e-12)
    # rows moved by 3 standard deviations of a feature drift
    shifted = x.copy()
    shifted[:, 0] += 3 * x[:, 0].std()
    raw = _raw(directory, _write(directory / "shifted.parquet", shifted),
               output={"path": str(directory / "shifted")}, drift={"enabled": True})
    assert run_score(spark, build_config(raw))["drift"]["drifted"]
    # streaming: the files of a directory, labelled as the batch job labels them
    landing = directory / "landing"
    landing.mkdir()
    _write(landing / "part-000.parquet", x[:300])
    _write(landing / "part-001.parquet", x[300:], first_id=300)
    raw = _raw(directory, str(landing), input={"stream": True, "max_files_per_batch": 1},
               output={"path": str(directory / "streamed"),
                       "checkpoint_path": str(directory / "checkpoint")})
    streamed = run_score(spark, build_config(raw))
    assert streamed["batches"] == [0, 1] and streamed["rows_labelled"] == len(x)
    frame = _labelled(str(directory / "streamed"))
    np.testing.assert_array_equal(frame["id"].to_numpy(), np.arange(len(x)))
    np.testing.assert_array_equal(frame["prediction"].to_numpy(), fit_frame["prediction"])


def test_the_report_names_the_estimator_and_shows_the_pruned_components(fitted) -> None:
    import matplotlib.image

    report = fitted[3]
    page = open(report["report_path"], encoding="utf-8").read()
    assert f"BayesianGaussianMixture, K = {K} (upper bound; {GENERATING} effective)" in page
    assert "Effective and pruned components" in page and "Lower bound per iteration" in page
    assert f"{GENERATING} effective components of K = {K}" in page
    pruned = report["pruned_components"]
    assert page.count("pruned (weight ≤ 0.01)") == len(pruned) == K - GENERATING
    for j in pruned:
        weight = report["weights"][j]
        assert re.search(rf"<tr><th>{j}</th><td>{weight:.6g}</td>", page), j
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    text = re.sub(r'src="data:image/png;base64,[^"]+"', "", page)
    assert "Choosing K" not in text and not re.search(r"BIC -?\d", text)  # no BIC to show
    assert "log-likelihood (total" not in text
    assert len(images) == 4  # lower bound, weights, rows, features
    for data in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)))
        assert pixels.shape[1] > 300 and (pixels[..., :3] < 0.9).any()


def test_a_mixture_cannot_warm_start_from_a_bayesian_artifact(spark, fitted, tmp_path) -> None:
    from spark_gmm.etl.artifact import read_warm_start

    _, _, config, _, _ = fitted
    raw = _raw(tmp_path, config.input.path, model={"warm_start": config.model.path})
    del raw["model"]["estimator"], raw["model"]["weight_concentration_prior"]
    with pytest.raises(InvalidInputError, match=r"is a BayesianGaussianMixtureModel; "
                                                r"model\.warm_start continues a GaussianMixture"):
        read_warm_start(spark, build_config(raw))


@pytest.mark.parametrize(("model", "pattern"), [
    ({"estimator": "bayesian", "prior": "conjugate"},
     r"^model\.prior is a key of model\.estimator = 'mixture' \(GaussianMixture\); "
     r"model\.estimator = 'bayesian' \(BayesianGaussianMixture\) does not take it"),
    ({"estimator": "bayesian", "prior_scale": [1.0]}, r"^model\.prior_scale is a key of "),
    ({"estimator": "bayesian", "warm_start": "models/old"}, r"^model\.warm_start is a key "),
    ({"weight_concentration_prior": 0.1},
     r"^model\.weight_concentration_prior is a key of model\.estimator = 'bayesian'"),
    ({"mean_prior": [0.0, 1.0]}, r"^model\.mean_prior is a key of model\.estimator = "),
    ({"estimator": "bayesian", "k": [3, 6]}, r"^model\.estimator = 'bayesian' fits one model"),
    ({"estimator": "bayes"}, r"^model\.estimator must be one of mixture, bayesian; got"),
    ({"estimator": "bayesian", "weight_concentration_prior_type": "stick"},
     r"^model\.weight_concentration_prior_type must be one of dirichlet_process, "),
    ({"estimator": "bayesian", "covariance_prior": [1.0, "x"]},
     r"^model\.covariance_prior must be a non-empty list of finite numbers"),
])
def test_the_config_names_the_key_of_the_other_estimator(model, pattern) -> None:
    with pytest.raises(ConfigError, match=pattern):
        build_config({**BASE, "model": model})


def test_a_bayesian_job_takes_no_checkpoint() -> None:
    with pytest.raises(ConfigError, match=r"^checkpoint\.path is a key of model\.estimator = "
                                          r"'mixture'"):
        build_config({**BASE, "model": {"estimator": "bayesian"},
                      "checkpoint": {"path": "/tmp/em.json"}})


BAYESIAN_ONLY = [rule for rule in BAYESIAN_PARAMETERS.values() if rule.config_key.startswith(
    "model.") and rule.name not in PARAMETERS]


@pytest.mark.parametrize("rule", BAYESIAN_ONLY, ids=lambda rule: rule.name)
def test_the_bayesian_keys_follow_the_declaration(rule) -> None:
    key = rule.config_key.split(".")[1]
    bad = ("nope" if rule.choices else [] if rule.type is list else
           rule.minimum if rule.exclusive else rule.minimum - 1)
    with pytest.raises(ConfigError, match=rf"^model\.{key} must be .*got "):
        build_config({**BASE, "model": {"estimator": "bayesian", key: bad}})
    good = (rule.choices[-1] if rule.choices else [1.0, 2.0] if rule.type is list
            else 2.5)
    config = build_config({**BASE, "model": {"estimator": "bayesian", key: good}})
    assert getattr(config.model, key) == (tuple(good) if rule.type is list else good)
    # and the config's round trip keeps it (the score job rebuilds configs from dicts)
    assert build_config(config.to_dict()) == config


def test_the_bayesian_defaults_are_the_estimator_s() -> None:
    config, estimator = ModelConfig(), BayesianGaussianMixture()
    assert len(BAYESIAN_ONLY) == 6
    for rule in BAYESIAN_ONLY:
        default = estimator.getOrDefault(rule.name) if estimator.isDefined(rule.name) else None
        assert getattr(config, rule.config_key.split(".")[1]) == default, rule.name
