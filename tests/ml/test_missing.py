"""missingFeatures="marginalize": the distributed fit against a row-by-row EM with missing
features (tests/helpers.missing_reference_em), the default fit when nothing is missing, any
partitioning; what stays invalid; transform and imputedCol against the reference's
conditional means."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from spark_gmm import GaussianMixture, GaussianMixtureModel
from spark_gmm.errors import InvalidInputError
from tests.helpers import (
    initial_parameters,
    make_mixture,
    missing_reference_em,
    to_dataframe,
    with_missing,
)


@pytest.fixture(scope="module")
def complete_rows() -> np.ndarray:
    return make_mixture(n=600, seed=5, k=3, offset=20.0)[0]


@pytest.fixture(scope="module")
def rows(complete_rows) -> np.ndarray:
    x = with_missing(complete_rows, share=0.3, most=2, seed=9)
    assert 0.25 < np.isnan(x).any(axis=1).mean() < 0.35
    return x


@pytest.fixture(scope="module")
def rows_df(spark, rows):
    return to_dataframe(spark, rows, partitions=3).cache()


def _start(x: np.ndarray, covariance_type: str) -> GaussianMixtureModel:
    complete = x[~np.isnan(x).any(axis=1)]
    p = initial_parameters(complete, 3, covariance_type, seed=4)
    return GaussianMixtureModel.fromArrays(p.weights, p.means, p.covariances, covariance_type)


def _fit(df, start: GaussianMixtureModel, **params) -> GaussianMixtureModel:
    return (GaussianMixture(k=3, covarianceType=start.getCovarianceType(), maxIter=6, tol=0.0,
                            **params).setInitialModel(start).fit(df))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fit_equals_row_by_row_em(rows, rows_df, covariance_type: str) -> None:
    start = _start(rows, covariance_type)
    model = _fit(rows_df, start, missingFeatures="marginalize")
    ref, log_likelihood, _ = missing_reference_em(rows, None, start.parameters, 6, 1e-6)
    assert model.summary.numIter == 6
    np.testing.assert_allclose(model.weights, ref.weights, rtol=1e-9)
    np.testing.assert_allclose(model.means, ref.means, rtol=1e-9)
    np.testing.assert_allclose(model.covariances, ref.covariances, rtol=1e-9, atol=1e-12)
    assert model.summary.logLikelihood == pytest.approx(log_likelihood, rel=1e-9)
    assert sum(model.summary.clusterSizes) == len(rows)


def test_nothing_missing_equals_the_default_fit(spark, complete_rows) -> None:
    df = to_dataframe(spark, complete_rows, partitions=3)
    start = _start(complete_rows, "full")
    marginal = _fit(df, start, missingFeatures="marginalize")
    default = _fit(df, start)
    np.testing.assert_allclose(marginal.weights, default.weights, rtol=1e-12)
    np.testing.assert_allclose(marginal.means, default.means, rtol=1e-12)
    np.testing.assert_allclose(marginal.covariances, default.covariances, rtol=1e-12)
    assert marginal.summary.logLikelihood == pytest.approx(default.summary.logLikelihood,
                                                           rel=1e-12)


def test_any_partitioning_and_initialisation_gives_the_same_model(spark, rows, caplog
                                                                  ) -> None:
    # No initial model: k-means|| sees the incomplete rows at the data mean.
    with caplog.at_level(logging.INFO, logger="spark_gmm.runtime.ingest"):
        models = [GaussianMixture(k=3, covarianceType="diag", maxIter=5, seed=3,
                                  missingFeatures="marginalize").fit(
                                      to_dataframe(spark, rows, p)) for p in (1, 4)]
    missing = np.isnan(rows).sum(axis=1)
    line = (f"{len(rows)} rows: {(missing == 0).sum()} complete, {(missing > 0).sum()} with "
            f"missing features (by number missing: 1: {(missing == 1).sum()}, 2: "
            f"{(missing == 2).sum()})")
    assert caplog.text.count(line) == 2
    np.testing.assert_allclose(models[0].means, models[1].means, rtol=1e-9)
    np.testing.assert_allclose(models[0].covariances, models[1].covariances, rtol=1e-9)


def test_infinite_and_unobserved_rows_stay_invalid(spark, rows) -> None:
    for bad in (np.inf, np.nan):
        x = np.array(rows[:60])
        x[7] = [bad, 1.0, 2.0] if bad == np.inf else np.nan
        with pytest.raises(InvalidInputError, match="1 of 60"):
            GaussianMixture(k=2, missingFeatures="marginalize").fit(to_dataframe(spark, x, 2))
    with pytest.raises(InvalidInputError, match="NaN"):
        GaussianMixture(k=2).fit(to_dataframe(spark, rows[:60], 2))


def test_transform_and_imputed_col_equal_the_reference(spark, rows) -> None:
    df = to_dataframe(spark, rows, partitions=3, extra={"id": np.arange(len(rows))})
    model = _fit(df, _start(rows, "full"), missingFeatures="marginalize", imputedCol="imputed",
                 logLikelihoodCol="ll")
    from tests.helpers import missing_reference_estep

    log_likelihood, resp, completed, _ = missing_reference_estep(rows, model.parameters)
    out = sorted(model.transform(df).collect(), key=lambda r: r.id)
    np.testing.assert_array_equal([r.prediction for r in out], resp.argmax(axis=1))
    np.testing.assert_allclose([r.probability.toArray() for r in out], resp, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose([r.ll for r in out], log_likelihood, rtol=1e-10)
    imputed = np.array([r.imputed.toArray() for r in out])
    expected = np.einsum("nk,nkd->nd", resp, completed)
    np.testing.assert_allclose(imputed, expected, rtol=1e-9)
    complete = ~np.isnan(rows).any(axis=1)
    np.testing.assert_array_equal(imputed[complete], rows[complete])
    # The same model with the default rule leaves incomplete rows unscored (null outputs).
    default = model.copy().setMissingFeatures("error").setImputedCol("")
    nulls = [r.prediction is None for r in sorted(default.transform(df).collect(),
                                                    key=lambda r: r.id)]
    np.testing.assert_array_equal(nulls, ~complete)
    row = rows[np.flatnonzero(~complete)[0]]
    assert model.predict(row) == resp[np.flatnonzero(~complete)[0]].argmax()
    with pytest.raises(ValueError, match="finite feature values"):
        default.predict(row)


def test_noise_and_marginalize_are_refused_together() -> None:
    with pytest.raises(ValueError, match="cannot be combined"):
        GaussianMixture(noise=True, missingFeatures="marginalize")._settings()


def _parquet(spark, tmp_path, x: np.ndarray):
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = str(tmp_path / "rows.parquet")
    pq.write_table(pa.table({"features": pa.array(list(x), type=pa.list_(pa.float64()))}),
                   path, row_group_size=len(x) // 4)
    return spark.read.parquet(path)


def _mean_error(model, means: np.ndarray) -> float:
    # The largest distance of a generating mean from its nearest fitted mean.
    fitted = model.means
    return float(max(np.abs(fitted - m).max(axis=1).min() for m in means))


def test_recovers_the_generating_means_with_40_percent_incomplete(spark, tmp_path) -> None:
    import logging

    x, _, means, _ = make_mixture(n=60_000, seed=31, k=3)
    holed = with_missing(x, share=0.4, most=2, seed=32)
    assert 0.38 < np.isnan(holed).any(axis=1).mean() < 0.42

    def fit(rows: np.ndarray, **params) -> GaussianMixtureModel:
        return GaussianMixture(k=3, seed=5, maxIter=200, tol=1e-6, **params).fit(
            _parquet(spark, tmp_path / str(len(params)) / str(len(rows)), rows))

    marginal = fit(holed, missingFeatures="marginalize")
    error = _mean_error(marginal, means)
    assert error < 0.05
    complete_case = fit(holed[~np.isnan(holed).any(axis=1)])
    imputed = fit(np.where(np.isnan(holed), np.nanmean(holed, axis=0), holed))
    logging.getLogger(__name__).warning(
        "60k rows, 40 %% incomplete: largest error of a mean: marginalize %.4f, complete-case "
        "%.4f, mean imputation %.4f", error, _mean_error(complete_case, means),
        _mean_error(imputed, means))
