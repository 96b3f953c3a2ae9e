"""The fit report's geometry against closed forms and scipy, and its page (Spark-free; the
end-to-end report of a fit job is rendered in Chromium in test_etl_jobs)."""

from __future__ import annotations

import base64
import io
import re
import sys

import numpy as np
import pytest
from scipy import stats

from spark_gmm.errors import InvalidInputError
from spark_gmm.kernels import COVARIANCE_TYPES, GaussianParameters
from spark_gmm.kernels.generate import sample_mixture
from spark_gmm.report.geometry import (
    dense_covariances,
    ellipse,
    marginal_densities,
    mixture_covariance,
    principal_plane,
    projected_components,
)
from spark_gmm.report.page import ReportInputs, render_report, require_matplotlib

pytest.importorskip("matplotlib")


def _mixture(covariance_type: str, d: int = 4, k: int = 3, seed: int = 0) -> GaussianParameters:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(scale=3.0, size=(k, d))
    a = rng.normal(size=(k, d, d))
    full = a @ a.transpose(0, 2, 1) + d * np.eye(d)
    covariances = {"full": full, "tied": full[0], "diag": rng.uniform(0.5, 2.0, (k, d)),
                   "spherical": rng.uniform(0.5, 2.0, k)}[covariance_type]
    return GaussianParameters.from_covariances(weights, means, covariances, covariance_type)


def _explicit_dense(p: GaussianParameters) -> np.ndarray:
    k, d = p.n_components, p.n_features
    c = p.covariances
    return {"full": lambda: c, "tied": lambda: np.repeat(c[None], k, axis=0),
            "diag": lambda: np.array([np.diag(v) for v in c]),
            "spherical": lambda: np.array([v * np.eye(d) for v in c])}[p.covariance_type]()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_mixture_covariance_is_the_law_of_total_covariance(covariance_type) -> None:
    p = _mixture(covariance_type)
    np.testing.assert_allclose(dense_covariances(p), _explicit_dense(p), rtol=1e-12)
    between = np.cov(p.means.T, aweights=p.weights, bias=True)
    within = sum(w * c for w, c in zip(p.weights, _explicit_dense(p)))
    np.testing.assert_allclose(mixture_covariance(p), within + between, rtol=1e-10)
    # and the covariance of a large sample, within 5 standard errors of each entry (the
    # standard error of a mean of (x_i − m_i)(x_j − m_j) over n rows, estimated from them)
    x, _ = sample_mixture(p, 200_000, np.random.default_rng(1))
    centred = x - x.mean(axis=0)
    products = centred[:, :, None] * centred[:, None, :]
    standard_error = products.std(axis=0) / np.sqrt(len(x))
    assert np.all(np.abs(products.mean(axis=0) - mixture_covariance(p)) < 5 * standard_error)


def test_the_plane_is_spanned_by_the_two_leading_eigenvectors() -> None:
    p = _mixture("full", d=5)
    plane = principal_plane(p)
    np.testing.assert_allclose(plane.axes @ plane.axes.T, np.eye(2), atol=1e-12)
    u, s, _ = np.linalg.svd(mixture_covariance(p))
    for row, reference in zip(plane.axes, u[:, :2].T):
        assert abs(abs(row @ reference) - 1.0) < 1e-10
    np.testing.assert_allclose(plane.explained, s[:2] / s.sum(), rtol=1e-10)
    np.testing.assert_allclose(plane.center, p.weights @ p.means, rtol=1e-12)


def test_one_feature_gets_a_flat_second_axis() -> None:
    p = GaussianParameters.from_covariances(np.array([0.5, 0.5]), np.array([[0.0], [3.0]]),
                                            np.array([1.0, 2.0]), "spherical")
    plane = principal_plane(p)
    np.testing.assert_allclose(plane.axes, [[1.0], [0.0]])
    np.testing.assert_allclose(plane.explained, [1.0, 0.0])


def test_projected_components_are_the_distribution_of_projected_rows() -> None:
    p = _mixture("full", d=4)
    plane = principal_plane(p)
    means, covariances = projected_components(p, plane)
    for j in range(p.n_components):
        np.testing.assert_allclose(means[j], plane.axes @ (p.means[j] - plane.center),
                                   atol=1e-12)
        np.testing.assert_allclose(covariances[j], plane.axes @ p.covariances[j] @ plane.axes.T,
                                   rtol=1e-12)


def test_an_ellipse_is_the_radius_sigma_contour() -> None:
    covariance = np.array([[2.0, 0.8], [0.8, 1.0]])
    mean = np.array([1.0, -2.0])
    for radius in (1.0, 2.0):
        curve = ellipse(mean, covariance, radius)
        offsets = curve - mean
        distances = np.einsum("ni,ij,nj->n", offsets, np.linalg.inv(covariance), offsets)
        np.testing.assert_allclose(distances, radius**2, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_marginal_densities_are_scipy_s_normal_densities(covariance_type) -> None:
    p = _mixture(covariance_type)
    grid = np.linspace(-15.0, 15.0, 4001)
    for feature in range(p.n_features):
        densities = marginal_densities(p, feature, grid)
        for j in range(p.n_components):
            variance = _explicit_dense(p)[j, feature, feature]
            expected = p.weights[j] * stats.norm.pdf(grid, p.means[j, feature], np.sqrt(variance))
            np.testing.assert_allclose(densities[j], expected, rtol=1e-10, atol=1e-300)


def _inputs(**changes) -> ReportInputs:
    p = _mixture("full", d=3)
    x, _ = sample_mixture(p, 500, np.random.default_rng(2))
    base = dict(parameters=p, feature_names=["a", "<b>", "c"], mean=[], scale=[],
                histories=[[-900.0, -850.0, -849.0], [-950.0, -860.0]],
                cluster_sizes=[200, 200, 100], criteria={"bic": 1.0, "aic": 2.0, "icl": None},
                selection=None, sample=x, facts=[("rows", "500"), ("note", "<i>raw</i>")])
    return ReportInputs(**{**base, **changes})


def _images(page: str) -> list[np.ndarray]:
    import matplotlib.image

    found = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
            for data in found]


def test_the_page_inlines_one_decodable_non_blank_png_per_figure() -> None:
    table = [{"k": k, "covarianceType": t, "bic": 10.0 * abs(k - 3) + i, "aic": 5.0 - k,
              "icl": None if t == "diag" else 12.0 * abs(k - 3)}
             for k in range(1, 6) for i, t in enumerate(("full", "diag"))]
    selection = {"criterion": "bic", "chosen": {"k": 3, "covarianceType": "full"},
                 "table": table}
    page = render_report(_inputs(selection=selection))
    images = _images(page)
    # likelihood, criteria, weights, rows on the plane, marginals
    assert len(images) == 5
    for image in images:
        assert image.shape[0] > 150 and image.shape[1] > 300
        assert (image[..., :3] < 0.9).mean() > 0.01  # something is drawn on the white
    assert "<i>raw</i>" not in page and "&lt;i&gt;raw&lt;/i&gt;" in page
    assert "lowest BIC chose K = 3, full" in page


def test_without_a_selection_or_a_sample_the_page_says_so() -> None:
    page = render_report(_inputs(sample=None))
    assert len(_images(page)) == 2  # likelihood and weights
    assert "One model was fitted" in page and "holds no sample of training rows" in page


def test_a_missing_matplotlib_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(InvalidInputError, match=r"pip install 'spark-gmm\[report\]'"):
        require_matplotlib()


def test_a_fit_job_asking_for_a_report_fails_before_any_work(monkeypatch, tmp_path) -> None:
    from spark_gmm.etl.config import build_config
    from spark_gmm.etl.fit_job import run_fit

    config = build_config({"input": {"path": str(tmp_path / "none"), "features": ["a"]},
                           "model": {"path": str(tmp_path / "m")},
                           "output": {"path": str(tmp_path / "o")}, "report": {"enabled": True}})
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(InvalidInputError, match="spark-gmm\\[report\\]"):
        run_fit(None, config)  # no session needed: nothing is read before the check
