"""The drop-in claim, checked against ``pyspark.ml.clustering.GaussianMixture`` itself:
the same params with the same defaults, setters and getters, the same output columns and
every member of its training summary with the same meaning."""

from __future__ import annotations

import inspect
from collections import Counter

import numpy as np
import pytest
from pyspark.ml.clustering import GaussianMixture as MLlibGaussianMixture
from pyspark.ml.clustering import GaussianMixtureSummary as MLlibSummary
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from spark_gmm import GaussianMixture
from spark_gmm.ml.params import PARAMETERS
from tests.helpers import make_mixture, to_dataframe

# Where our default differs on purpose, and why; the test checks each difference is real.
DELIBERATE = {
    # pyspark derives its default seed from hash(type name), which changes between Python
    # processes (hash randomisation): ours is fixed, so an unseeded fit is reproducible.
    "seed",
    # MLlib stops when the *total* log-likelihood moves by less than tol (0.01): on a million
    # rows that is 1e-8 per row, so it nearly always runs maxIter. Ours, like scikit-learn,
    # compares the mean per-row log-likelihood, which does not depend on the row count, with
    # scikit-learn's default 1e-3 (see the README's param table).
    "tol",
}


@pytest.fixture(scope="module")
def pair(spark):
    return MLlibGaussianMixture(), GaussianMixture()


def test_every_mllib_param_exists_with_its_default(pair) -> None:
    mllib, ours = pair
    for param in mllib.params:
        assert ours.hasParam(param.name), f"missing param {param.name}"
        ours_param = ours.getParam(param.name)
        assert ours.hasDefault(ours_param) == mllib.hasDefault(param), param.name
        if not mllib.hasDefault(param):
            continue
        same = ours.getOrDefault(ours_param) == mllib.getOrDefault(param)
        assert same != (param.name in DELIBERATE), (
            f"{param.name}: ours {ours.getOrDefault(ours_param)!r}, MLlib "
            f"{mllib.getOrDefault(param)!r}")


def test_the_params_declared_as_mllibs_are_mllibs(pair) -> None:
    mllib, _ = pair
    assert {rule.name for rule in PARAMETERS.values() if rule.mllib} == {
        param.name for param in mllib.params}


def test_every_mllib_setter_and_getter_exists(pair) -> None:
    mllib, ours = pair
    names = [n for n in dir(mllib) if n.startswith(("set", "get")) and not n.startswith("_")]
    assert len(names) > 15
    missing = [n for n in names if not callable(getattr(ours, n, None))]
    assert not missing
    for param in mllib.params:  # each setter sets the param of the same name
        setter = "set" + param.name[0].upper() + param.name[1:]
        if hasattr(mllib, setter) and param.name not in ("seed",):
            value = mllib.getOrDefault(param) if mllib.hasDefault(param) else "w"
            copy = ours.copy()
            getattr(copy, setter)(value)
            assert copy.getOrDefault(param.name) == value


def test_fit_and_transform_give_mllibs_columns(spark) -> None:
    x, *_ = make_mixture(n=300, seed=17, k=2, n_features=2)
    df = to_dataframe(spark, x, partitions=2)
    theirs = MLlibGaussianMixture(k=2, seed=1, maxIter=5).fit(df)
    ours = GaussianMixture(k=2, seed=1, maxIter=5).fit(df)
    their_out, our_out = theirs.transform(df), ours.transform(df)
    assert our_out.columns == their_out.columns
    # Same types; ours are nullable where MLlib's are not: a row with invalid features gets
    # a null prediction instead of failing the whole transform.
    assert _types(our_out) == _types(their_out)
    assert _types(ours.gaussiansDF) == _types(theirs.gaussiansDF)
    assert len(ours.weights) == len(theirs.weights) == 2
    assert ours.summary.k == theirs.summary.k
    assert len(ours.summary.clusterSizes) == len(theirs.summary.clusterSizes)
    # Renamed output columns work the same way on both.
    for model in (theirs, ours):
        model.setPredictionCol("c").setProbabilityCol("p")
    assert ours.transform(df).columns == theirs.transform(df).columns
    their_rows, our_rows = theirs.transform(df).collect(), ours.transform(df).collect()
    assert np.isclose(sum(r.p.toArray().sum() for r in our_rows), len(our_rows))
    assert len(their_rows) == len(our_rows)


def _types(frame) -> list[tuple[str, str]]:
    return [(field.name, field.dataType.simpleString()) for field in frame.schema.fields]


def _mllib_summary_members() -> set[str]:
    # The public properties of pyspark's GaussianMixtureSummary and its ClusteringSummary.
    return {name for name, member in inspect.getmembers(MLlibSummary)
            if not name.startswith("_") and isinstance(member, property)}


def test_the_summary_has_every_member_of_mllibs_with_its_meaning(spark) -> None:
    members = _mllib_summary_members()
    # The ten of pyspark 3.x/4.x; a new one fails here until it is added to ours.
    assert members == {"predictions", "cluster", "probability", "featuresCol", "predictionCol",
                       "probabilityCol", "k", "clusterSizes", "logLikelihood", "numIter"}
    x, *_ = make_mixture(n=400, seed=23, k=3, n_features=2)
    df = to_dataframe(spark, x, partitions=2)
    params = {"k": 3, "seed": 4, "maxIter": 6, "tol": 0.0, "predictionCol": "c",
              "probabilityCol": "p"}
    theirs = MLlibGaussianMixture(**params).fit(df).summary
    model = GaussianMixture(**params).fit(df)
    ours = model.summary
    assert not [name for name in members if not hasattr(ours, name)]
    for name in ("featuresCol", "predictionCol", "probabilityCol", "k", "numIter"):
        assert getattr(ours, name) == getattr(theirs, name), name  # tol 0: maxIter each
    model.setPredictionCol("later").setProbabilityCol("later_p")  # the summary keeps its own
    predictions = ours.predictions
    assert predictions.columns == ["features", "p", "c"] == theirs.predictions.columns
    rows = predictions.collect()
    assert [r.c for r in ours.cluster.collect()] == [r.c for r in rows]
    assert ours.cluster.columns == theirs.cluster.columns == ["c"]
    assert ours.probability.columns == theirs.probability.columns == ["p"]
    np.testing.assert_array_equal([r.p.toArray() for r in ours.probability.collect()],
                                  [r.p.toArray() for r in rows])
    counts = Counter(r.c for r in rows)
    assert ours.clusterSizes == [counts[j] for j in range(3)]
    assert sum(theirs.clusterSizes) == sum(ours.clusterSizes) == len(x)
    # logLikelihood: the total of the rows' log densities under the fitted mixture.
    features = np.array([r.features.toArray() for r in rows])
    log_parts = np.column_stack([
        np.log(model.weights[j])
        + multivariate_normal(model.means[j], model.covariances[j]).logpdf(features)
        for j in range(3)])
    assert ours.logLikelihood == pytest.approx(logsumexp(log_parts, axis=1).sum(), rel=1e-10)
    assert isinstance(theirs.logLikelihood, float) and isinstance(ours.logLikelihood, float)
