"""select_model: every (k, covariance type) fitted, BIC/AIC/ICL tabulated, the best kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from spark_gmm import InvalidInputError, ModelSelection, select_model
from tests.helpers import make_mixture, to_dataframe


@pytest.fixture(scope="module")
def selection(spark) -> tuple[np.ndarray, ModelSelection]:
    x, *_ = make_mixture(n=3000, seed=8, n_features=2, k=3)
    df = to_dataframe(spark, x, partitions=3)
    return x, select_model(df, k=range(1, 5), covarianceTypes=("full", "diag"),
                           criterion="bic", seed=4, tol=1e-8, maxIter=300)


def test_the_table_has_every_pair_and_the_true_k_wins(selection) -> None:
    sel = selection[1]
    table = sel.table
    assert list(table.columns) == ["k", "covarianceType", "logLikelihood", "bic", "aic", "icl",
                                   "numIter", "converged", "seconds", "error"]
    assert list(zip(table["k"], table["covarianceType"])) == [
        (k, t) for t in ("full", "diag") for k in (1, 2, 3, 4)]
    assert sel.criterion == "bic" and (table["error"] == "").all()
    best = table.loc[table["bic"].idxmin()]
    assert (best["k"], best["covarianceType"]) == (3, "full")
    assert sel.best.getK() == 3 and sel.best.getCovarianceType() == "full"
    assert sel.best is sel.models[(3, "full")]
    # lower is better, and ICL adds twice a non-negative entropy to BIC (0 for k = 1)
    assert (table["icl"] >= table["bic"] - 1e-9).all()
    assert table.loc[table["k"] == 1, "icl"].tolist() == pytest.approx(
        table.loc[table["k"] == 1, "bic"].tolist())


def test_criteria_are_scikit_learn_s_for_the_same_likelihood(selection) -> None:
    x, sel = selection
    n, d = x.shape
    for _, row in sel.table.iterrows():
        k = int(row["k"])
        covariance = k * d * (d + 1) // 2 if row["covarianceType"] == "full" else k * d
        p = covariance + k * d + k - 1  # scikit-learn's _n_parameters
        assert row["bic"] == pytest.approx(-2 * row["logLikelihood"] + p * math.log(n))
        assert row["aic"] == pytest.approx(-2 * row["logLikelihood"] + 2 * p)
    # scikit-learn's own BIC of the winning pair, fitted on one machine, agrees
    theirs = SklearnGaussianMixture(3, covariance_type="full", tol=1e-10, max_iter=1000,
                                    n_init=3, random_state=0).fit(x).bic(x)
    ours = float(sel.table.loc[(sel.table["k"] == 3)
                               & (sel.table["covarianceType"] == "full"), "bic"].iloc[0])
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_a_bad_grid_or_criterion_is_refused_before_any_fit(spark) -> None:
    df = to_dataframe(spark, np.zeros((10, 2)), partitions=1)
    with pytest.raises(InvalidInputError, match="criterion must be one of bic, aic, icl"):
        select_model(df, criterion="likelihood")
    with pytest.raises(InvalidInputError, match="all ≥ 1"):
        select_model(df, k=[0, 2])
    with pytest.raises(InvalidInputError, match="covarianceTypes must be some of"):
        select_model(df, covarianceTypes=("full", "banded"))
