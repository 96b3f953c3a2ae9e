"""The fit report's geometry against closed forms and scipy, and its page (Spark-free; the
end-to-end report of a fit job is rendered in Chromium in test_etl_jobs)."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
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


def _figures(histories=((-900.0, -850.0, -849.0), (-950.0, -860.0), (-940.0, -845.0)),
             chosen: int = 2) -> dict:
    """Every figure of the report, as matplotlib figures."""
    from spark_gmm.report.figures import (
        draw_criteria,
        draw_likelihood,
        draw_marginals,
        draw_plane,
        draw_weights,
    )

    inputs = _inputs(feature_names=["a", "b", "c"], mean=[1.0, 2.0, 3.0], scale=[2.0, 1.0, 0.5])
    p, x = inputs.parameters, inputs.sample
    table = [{"k": k, "covarianceType": t, "bic": 10.0 * k, "aic": 5.0 * k, "icl": 12.0 * k}
             for k in (2, 3) for t in ("full", "diag")]
    labels = np.arange(len(x)) % p.n_components
    return {"likelihood": draw_likelihood([list(h) for h in histories], chosen),
            "criteria": draw_criteria(table, (2, "full"), "bic"),
            "weights": draw_weights(p.weights.tolist(), [200, 200, 100]),
            "plane": draw_plane(p, x, labels),
            "marginals": draw_marginals(p, x, ["a", "b", "c"], [1.0, 2.0, 3.0],
                                        [2.0, 1.0, 0.5])}


def test_every_axis_of_every_figure_is_labelled_with_readable_ticks() -> None:
    for name, figure in _figures().items():
        shown = [axes for axes in figure.axes if axes.get_visible()]
        assert shown, name
        for axes in shown:
            assert axes.get_xlabel().strip() and axes.get_ylabel().strip(), (name, axes)
            ticks = axes.xaxis.get_major_ticks() + axes.yaxis.get_major_ticks()
            assert ticks and min(t.label1.get_fontsize() for t in ticks) >= 10, name
            assert axes.xaxis.label.get_fontsize() >= 11 and axes.yaxis.label.get_fontsize() >= 11
    # the histograms say what their axes measure, in the input's units
    marginals = [a for a in _figures()["marginals"].axes if a.get_visible()]
    assert [a.get_xlabel() for a in marginals] == [f"{n} (input units)" for n in "abc"]
    assert {a.get_ylabel() for a in marginals} == {"probability density"}


@pytest.mark.parametrize("chosen", [0, 1, 2])
def test_the_chosen_restart_is_drawn_on_top_and_named_first_in_the_legend(chosen) -> None:
    figure = _figures(chosen=chosen)["likelihood"]
    [axes] = figure.axes
    lines = axes.get_lines()
    assert len(lines) == 3
    top = max(lines, key=lambda line: line.get_zorder())
    assert [line.get_zorder() for line in lines].count(top.get_zorder()) == 1
    assert len(top.get_xdata()) == len(((-900.0, -850.0, -849.0), (-950.0, -860.0),
                                        (-940.0, -845.0))[chosen])
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend[0] == top.get_label() and legend[0].startswith(f"restart {chosen} (chosen")
    assert top.get_linewidth() > max(line.get_linewidth() for line in lines if line is not top)


def test_with_many_restarts_the_legend_still_names_the_chosen_one() -> None:
    histories = [[-900.0 - i, -850.0 - i] for i in range(20)]
    [axes] = _figures(histories=histories, chosen=7)["likelihood"].axes
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == ["restart 7 (chosen: highest final log-likelihood)", "other restarts"]
    top = max(axes.get_lines(), key=lambda line: line.get_zorder())
    assert top.get_label() == legend[0]


def test_the_scatter_dots_are_large_and_opaque_enough_to_read() -> None:
    [axes] = _figures()["plane"].axes
    [dots] = axes.collections
    assert len(dots.get_offsets()) == 500
    assert dots.get_sizes().min() >= 16 and dots.get_alpha() >= 0.8


def test_every_figure_is_as_wide_as_the_page() -> None:
    from spark_gmm.report.figures import PAGE_WIDTH_PX
    from spark_gmm.report.page import STYLE

    for name, figure in _figures().items():
        assert figure.get_size_inches()[0] * figure.dpi == pytest.approx(PAGE_WIDTH_PX), name
    table = [{"k": k, "covarianceType": "full", "bic": 1.0 * k, "aic": 1.0, "icl": 1.0}
             for k in (2, 3)]
    page = render_report(_inputs(selection={"criterion": "bic", "table": table,
                                            "chosen": {"k": 2, "covarianceType": "full"}}))
    images = _images(page)
    assert len(images) == 5 and {image.shape[1] for image in images} == {PAGE_WIDTH_PX}
    # the page's content column is the figures' width, and every figure fills it
    assert f"max-width: {PAGE_WIDTH_PX}px" in STYLE and "img { width: 100%" in STYLE


def test_in_a_1280_px_browser_window_each_figure_fills_the_column(tmp_path) -> None:
    from spark_gmm.report.figures import PAGE_WIDTH_PX
    from tests.browser import CHROMIUM_FLAGS, chromium

    probe = ("<script>window.addEventListener('load', () => { const out = "
             "document.createElement('pre'); out.id = 'widths'; out.textContent = "
             "JSON.stringify(Array.from(document.images).map(i => "
             "i.getBoundingClientRect().width)); document.body.appendChild(out); });</script>")
    page = tmp_path / "report.html"
    page.write_text(render_report(_inputs()).replace("</body>", probe + "</body>"))
    dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p'}",
                          "--window-size=1280,2000", "--virtual-time-budget=10000",
                          "--dump-dom", f"file://{page}"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    widths = json.loads(re.search(r'<pre id="widths">(.*?)</pre>', dom, re.S).group(1))
    assert len(widths) == 4 and all(abs(w - PAGE_WIDTH_PX) <= 1 for w in widths), widths


def test_a_noise_component_is_shown_apart() -> None:
    from spark_gmm.kernels import e_step
    from spark_gmm.kernels.generate import noise_box
    from spark_gmm.report.figures import draw_plane, draw_weights

    p = _mixture("full", d=3)
    lower, upper = np.full(3, -12.0), np.full(3, 12.0)
    noisy = p.with_noise(0.2, float(np.sum(np.log(upper - lower))))
    x, drawn = sample_mixture(noisy, 600, np.random.default_rng(3),
                              noise_box(lower, upper, noisy.noise_log_volume))
    labels = e_step(x, noisy)[2]
    taken = int((labels == 3).sum())
    assert 0 < taken and (drawn == -1).sum() > 0
    axes = draw_plane(noisy, x, labels).axes[0]
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend == [f"noise ({taken} rows)"]
    # The crosses are the rows labelled noise, the dots the others.
    assert [len(c.get_offsets()) for c in axes.collections] == [600 - taken, taken]
    left, right = draw_weights(noisy.weights.tolist(), [100, 200, 200], noise=(0.2, taken)
                               ).axes
    assert [t.get_text() for t in left.get_xticklabels()] == ["0", "1", "2", "noise"]
    assert [b.get_height() for b in right.patches] == [100, 200, 200, taken]
    assert abs(left.patches[-1].get_height() - 0.2) < 1e-12
    page = render_report(_inputs(parameters=noisy, sample=x, noise_size=taken))
    assert len(_images(page)) == 4
    assert f"holds 20.0% of the weight and {taken} training rows" in page
    assert "the rows the noise component takes are grey crosses" in page
