"""The report's figures, drawn with matplotlib's object API (no pyplot: no global state, safe
in threads, no display needed) and returned as PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..kernels import GaussianParameters
from ..kernels.covariance import FloatArray
from .geometry import ellipse, marginal_densities, principal_plane, projected_components

try:
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
except ImportError:  # the ``report`` extra is optional; page.require_matplotlib explains
    colormaps = Figure = MaxNLocator = None

# Enough small panels to see every feature of a typical table; wider data shows the first.
MAX_MARGINALS = 24
CRITERIA = ("bic", "aic", "icl")


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _colours(k: int) -> list[Any]:
    palette = colormaps["tab10" if k <= 10 else "tab20"]
    return [palette(j % palette.N) for j in range(k)]


def likelihood_figure(histories: Sequence[Sequence[float]], chosen: int) -> bytes:
    """Total log-likelihood per EM iteration, one line per restart, the chosen one bold."""
    figure = Figure(figsize=(7.0, 3.6))
    axes = figure.subplots()
    for index, history in enumerate(histories):
        best = index == chosen
        axes.plot(np.arange(1, len(history) + 1), history, marker="o", markersize=3,
                  linewidth=2.4 if best else 1.0, alpha=1.0 if best else 0.6,
                  label=f"restart {index}" + (" (chosen)" if best else ""))
    axes.set_xlabel("EM iteration")
    axes.set_ylabel("log-likelihood (total)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.ticklabel_format(axis="y", useOffset=False)
    axes.grid(alpha=0.3)
    if len(histories) <= 12:
        axes.legend(fontsize=8)
    return _png(figure)


def criteria_figure(table: Sequence[dict[str, Any]], chosen: tuple[int, str],
                    criterion: str) -> bytes:
    """BIC, AIC and ICL against K, one line per covariance type; the chosen model starred
    in every panel, the panel of the criterion that chose it titled as such."""
    figure = Figure(figsize=(11.0, 3.6))
    panels = figure.subplots(1, len(CRITERIA), sharex=True)
    types = sorted({row["covarianceType"] for row in table})
    for name, axes in zip(CRITERIA, panels):
        for covariance_type in types:
            rows = sorted((r for r in table if r["covarianceType"] == covariance_type
                           and r.get(name) is not None), key=lambda r: r["k"])
            axes.plot([r["k"] for r in rows], [r[name] for r in rows], marker="o",
                      markersize=4, label=covariance_type)
        mark = [r for r in table if (r["k"], r["covarianceType"]) == chosen
                and r.get(name) is not None]
        if mark:
            axes.plot([mark[0]["k"]], [mark[0][name]], marker="*", markersize=16,
                      color="black", linestyle="none", label="chosen")
        axes.set_title(name.upper() + (" (chose the model)" if name == criterion else ""),
                       fontsize=10)
        axes.set_xlabel("K")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.ticklabel_format(axis="y", useOffset=False)
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("lower is better")
    panels[0].legend(fontsize=8)
    return _png(figure)


def weights_figure(weights: Sequence[float], cluster_sizes: Sequence[int]) -> bytes:
    """Mixture weights and hard-assignment cluster sizes per component."""
    figure = Figure(figsize=(9.0, 3.2))
    left, right = figure.subplots(1, 2)
    components = np.arange(len(weights))
    colours = _colours(len(weights))
    left.bar(components, weights, color=colours)
    left.set_title("weights π_k", fontsize=10)
    right.bar(components, cluster_sizes, color=colours)
    right.set_title("training rows assigned (argmax γ)", fontsize=10)
    for axes in (left, right):
        axes.set_xlabel("component")
        axes.set_xticks(components)
        axes.grid(alpha=0.3, axis="y")
    return _png(figure)


def plane_figure(parameters: GaussianParameters, rows: FloatArray,
                 labels: np.ndarray) -> bytes:
    """Sampled rows on the mixture's first two principal axes, coloured by prediction, with
    each component's 1σ (solid) and 2σ (dashed) ellipse."""
    plane = principal_plane(parameters)
    points = plane.project(rows)
    means, covariances = projected_components(parameters, plane)
    colours = _colours(parameters.n_components)
    figure = Figure(figsize=(7.0, 6.0))
    axes = figure.subplots()
    axes.scatter(points[:, 0], points[:, 1], s=6, alpha=0.5, linewidths=0,
                 c=[colours[j] for j in labels])
    for j in range(parameters.n_components):
        for radius, style in ((1.0, "-"), (2.0, "--")):
            curve = ellipse(means[j], covariances[j], radius)
            axes.plot(curve[:, 0], curve[:, 1], style, color=colours[j], linewidth=1.6)
        axes.annotate(str(j), means[j], fontsize=11, fontweight="bold", ha="center",
                      va="center", bbox={"boxstyle": "circle", "fc": "white", "alpha": 0.8})
    axes.set_xlabel(f"first principal axis ({plane.explained[0]:.0%} of the variance)")
    axes.set_ylabel(f"second principal axis ({plane.explained[1]:.0%})")
    axes.grid(alpha=0.3)
    return _png(figure)


def marginals_figure(parameters: GaussianParameters, rows: FloatArray,
                     names: Sequence[str], mean: Sequence[float],
                     scale: Sequence[float]) -> bytes:
    """Per feature: a density histogram of the sampled rows and the fitted marginal density
    (each weighted component thin, the mixture thick), in the original units when the model
    was fitted on standardised features (``mean``/``scale`` empty otherwise)."""
    d = min(parameters.n_features, MAX_MARGINALS)
    columns = min(d, 4)
    lines = math.ceil(d / columns)
    figure = Figure(figsize=(3.2 * columns, 2.5 * lines))
    panels = np.atleast_1d(figure.subplots(lines, columns, squeeze=False)).ravel()
    offset = np.asarray(mean, dtype=np.float64) if len(mean) else np.zeros(parameters.n_features)
    unit = np.asarray(scale, dtype=np.float64) if len(scale) else np.ones(parameters.n_features)
    colours = _colours(parameters.n_components)
    for j, axes in enumerate(panels):
        if j >= d:
            axes.set_visible(False)
            continue
        values = rows[:, j] * unit[j] + offset[j]
        axes.hist(values, bins=40, density=True, color="0.8", edgecolor="0.6", linewidth=0.4)
        low, high = np.percentile(values, [0.1, 99.9]) if len(values) else (-3.0, 3.0)
        spread = max(high - low, 1e-12 * max(1.0, abs(low)))
        grid = np.linspace(low - 0.1 * spread, high + 0.1 * spread, 300)
        # A density in standardised units z = (x − offset)/unit is divided by unit in x.
        densities = marginal_densities(parameters, j, (grid - offset[j]) / unit[j]) / unit[j]
        for component, density in enumerate(densities):
            axes.plot(grid, density, color=colours[component], linewidth=0.9)
        axes.plot(grid, densities.sum(axis=0), color="black", linewidth=1.8)
        axes.set_title(names[j] if j < len(names) else f"feature {j}", fontsize=9)
        axes.tick_params(labelsize=7)
    return _png(figure)
