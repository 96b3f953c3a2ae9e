"""The report's figures, drawn with matplotlib's object API (no pyplot: no global state, safe
in threads, no display needed) and returned as PNG bytes.

Every figure is as wide as the page's content column (``PAGE_WIDTH_PX`` pixels at ``DPI``),
so the browser shows it at its own size: its text at the sizes set here, and no empty half
of the page beside it. ``draw_*`` returns the matplotlib figure, ``*_figure`` its PNG.
"""

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
# The page's content column (page.py's CSS) and the figures' resolution: a figure of
# FIGURE_WIDTH inches is exactly that many pixels wide, shown at 1:1 on a 1280-px page.
PAGE_WIDTH_PX = 1180
DPI = 100
FIGURE_WIDTH = PAGE_WIDTH_PX / DPI
TICK_SIZE = 11  # points at DPI 100: ~15 px
LABEL_SIZE = 12
TITLE_SIZE = 13
LEGEND_SIZE = 11


def _figure(height: float) -> Any:
    # Constrained layout fits the labels inside the figure without changing its size
    # (bbox_inches="tight" would crop it to another width).
    return Figure(figsize=(FIGURE_WIDTH, height), dpi=DPI, layout="constrained")


def _style(axes: Any, xlabel: str, ylabel: str, title: str = "") -> None:
    axes.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    axes.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    if title:
        axes.set_title(title, fontsize=TITLE_SIZE)
    axes.tick_params(labelsize=TICK_SIZE)
    axes.grid(alpha=0.3)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _colours(k: int) -> list[Any]:
    palette = colormaps["tab10" if k <= 10 else "tab20"]
    return [palette(j % palette.N) for j in range(k)]


def draw_likelihood(histories: Sequence[Sequence[float]], chosen: int,
                    objective: str = "log-likelihood") -> Any:
    """Total log-likelihood (or a variational fit's ``objective``, "lower bound") per
    iteration, one line per restart; the chosen restart's line bold, drawn above the others
    and named first in the legend."""
    figure = _figure(4.4)
    axes = figure.subplots()
    many = len(histories) > 12
    lines = {}
    for index, history in enumerate(histories):
        best = index == chosen
        label = (f"restart {index} (chosen: highest final {objective})" if best
                 else "other restarts" if many and index == (1 if chosen == 0 else 0)
                 else "_nolegend_" if many else f"restart {index}")
        [lines[index]] = axes.plot(
            np.arange(1, len(history) + 1), history, marker="o",
            markersize=5 if best else 3, linewidth=2.8 if best else 1.2,
            alpha=1.0 if best else 0.6, label=label,
            # above every other restart's line, whatever order they were drawn in
            zorder=3 + len(histories) if best else 2 + index / max(1, len(histories)),
            color="black" if best else None)
    if objective == "log-likelihood":
        _style(axes, "EM iteration", "total log-likelihood of the training rows (nats)")
    else:
        _style(axes, "variational iteration", f"{objective} (nats)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.ticklabel_format(axis="y", useOffset=False)
    handles, labels = axes.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: handles[i] is not lines.get(chosen))
    axes.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=LEGEND_SIZE)
    return figure


def likelihood_figure(histories: Sequence[Sequence[float]], chosen: int,
                      objective: str = "log-likelihood") -> bytes:
    """:func:`draw_likelihood` as PNG bytes."""
    return _png(draw_likelihood(histories, chosen, objective))


def draw_criteria(table: Sequence[dict[str, Any]], chosen: tuple[int, str],
                  criterion: str) -> Any:
    """BIC, AIC and ICL against K, one line per covariance type; the chosen model starred
    in every panel, the panel of the criterion that chose it titled as such."""
    figure = _figure(4.6)
    panels = figure.subplots(1, len(CRITERIA), sharex=True)
    types = sorted({row["covarianceType"] for row in table})
    for name, axes in zip(CRITERIA, panels):
        for covariance_type in types:
            rows = sorted((r for r in table if r["covarianceType"] == covariance_type
                           and r.get(name) is not None), key=lambda r: r["k"])
            axes.plot([r["k"] for r in rows], [r[name] for r in rows], marker="o",
                      markersize=5, label=covariance_type)
        mark = [r for r in table if (r["k"], r["covarianceType"]) == chosen
                and r.get(name) is not None]
        if mark:
            axes.plot([mark[0]["k"]], [mark[0][name]], marker="*", markersize=18,
                      color="black", linestyle="none", label="chosen", zorder=5)
        _style(axes, "K (number of components)", f"{name.upper()} (lower is better)",
               name.upper() + (" (chose the model)" if name == criterion else ""))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.ticklabel_format(axis="y", useOffset=False)
    panels[0].legend(fontsize=LEGEND_SIZE)
    return figure


def criteria_figure(table: Sequence[dict[str, Any]], chosen: tuple[int, str],
                    criterion: str) -> bytes:
    """:func:`draw_criteria` as PNG bytes."""
    return _png(draw_criteria(table, chosen, criterion))


def draw_weights(weights: Sequence[float], cluster_sizes: Sequence[int],
                 threshold: float | None = None, noise: tuple[float, int] | None = None
                 ) -> Any:
    """Mixture weights and hard-assignment cluster sizes per component; with ``threshold``
    (a Bayesian model's effective-component weight) a dashed line at it, the components at
    or below it grey; with ``noise`` (its weight and rows) a hatched grey bar ``noise``
    last."""
    figure = _figure(4.0)
    left, right = figure.subplots(1, 2)
    components = np.arange(len(weights) + (noise is not None))
    colours = _colours(len(weights))
    if threshold is not None:
        colours = [c if w > threshold else "0.75" for c, w in zip(colours, weights)]
    if noise is not None:
        weights, cluster_sizes = [*weights, noise[0]], [*cluster_sizes, noise[1]]
        colours = [*colours, "0.6"]
    for axes, values in ((left, weights), (right, cluster_sizes)):
        bars = axes.bar(components, values, color=colours)
        if noise is not None:
            bars[-1].set_hatch("//")
    _style(left, "component", "mixture weight π_k (share of the rows)", "weights π_k")
    if threshold is not None:
        left.axhline(threshold, color="black", linestyle="--", linewidth=1.2,
                     label=f"effective above {threshold:g} (grey: pruned)")
        left.legend(fontsize=LEGEND_SIZE, loc="upper left")
    _style(right, "component", "training rows assigned (argmax γ)",
           "training rows assigned to each component")
    for axes in (left, right):
        if noise is None:
            axes.set_xticks(components)
        else:
            axes.set_xticks(components, [*map(str, components[:-1]), "noise"])
        axes.grid(alpha=0.3, axis="y")
        axes.grid(False, axis="x")
    return figure


def weights_figure(weights: Sequence[float], cluster_sizes: Sequence[int],
                   threshold: float | None = None, noise: tuple[float, int] | None = None
                   ) -> bytes:
    """:func:`draw_weights` as PNG bytes."""
    return _png(draw_weights(weights, cluster_sizes, threshold, noise))


def draw_plane(parameters: GaussianParameters, rows: FloatArray, labels: np.ndarray,
               shown: Sequence[int] | None = None) -> Any:
    """Sampled rows on the mixture's first two principal axes, coloured by prediction, with
    the 1σ (solid) and 2σ (dashed) ellipse of each component (of those in ``shown``); rows
    labelled K (a noise component's) drawn apart as grey crosses."""
    plane = principal_plane(parameters)
    points = plane.project(rows)
    means, covariances = projected_components(parameters, plane)
    colours = _colours(parameters.n_components)
    figure = _figure(7.2)
    axes = figure.subplots()
    # Dots large and opaque enough to read their colour; the thin white edge keeps
    # overlapping dots apart.
    noise = labels == parameters.n_components
    axes.scatter(points[~noise, 0], points[~noise, 1], s=22, alpha=0.85, linewidths=0.3,
                 edgecolors="white", c=[colours[j] for j in labels[~noise]], zorder=2)
    if noise.any():
        axes.scatter(points[noise, 0], points[noise, 1], s=22, marker="x", color="0.45",
                     linewidths=1.0, zorder=1, label=f"noise ({int(noise.sum())} rows)")
        axes.legend(fontsize=LEGEND_SIZE, loc="upper right")
    for j in range(parameters.n_components) if shown is None else shown:
        for radius, style in ((1.0, "-"), (2.0, "--")):
            curve = ellipse(means[j], covariances[j], radius)
            axes.plot(curve[:, 0], curve[:, 1], style, color=colours[j], linewidth=2.0,
                      zorder=3)
        axes.annotate(str(j), means[j], fontsize=LABEL_SIZE, fontweight="bold", ha="center",
                      va="center", zorder=4,
                      bbox={"boxstyle": "circle", "fc": "white", "alpha": 0.85})
    _style(axes, f"first principal axis (model units; {plane.explained[0]:.0%} of the "
                 "variance)",
           f"second principal axis (model units; {plane.explained[1]:.0%})")
    return figure


def plane_figure(parameters: GaussianParameters, rows: FloatArray,
                 labels: np.ndarray, shown: Sequence[int] | None = None) -> bytes:
    """:func:`draw_plane` as PNG bytes."""
    return _png(draw_plane(parameters, rows, labels, shown))


def draw_marginals(parameters: GaussianParameters, rows: FloatArray, names: Sequence[str],
                   mean: Sequence[float], scale: Sequence[float]) -> Any:
    """Per feature: a density histogram of the sampled rows' observed values and the fitted
    marginal density (each weighted component thin, the mixture thick), in the original
    units when the model was fitted on standardised features (``mean``/``scale`` empty
    otherwise)."""
    d = min(parameters.n_features, MAX_MARGINALS)
    columns = min(d, 4)
    lines = math.ceil(d / columns)
    figure = _figure(3.3 * lines)
    panels = np.atleast_1d(figure.subplots(lines, columns, squeeze=False)).ravel()
    offset = np.asarray(mean, dtype=np.float64) if len(mean) else np.zeros(parameters.n_features)
    unit = np.asarray(scale, dtype=np.float64) if len(scale) else np.ones(parameters.n_features)
    colours = _colours(parameters.n_components)
    for j, axes in enumerate(panels):
        if j >= d:
            axes.set_visible(False)
            continue
        values = rows[:, j] * unit[j] + offset[j]
        values = values[~np.isnan(values)]  # a row's missing feature (missingFeatures)
        axes.hist(values, bins=40, density=True, color="0.8", edgecolor="0.6", linewidth=0.4)
        low, high = np.percentile(values, [0.1, 99.9]) if len(values) else (-3.0, 3.0)
        spread = max(high - low, 1e-12 * max(1.0, abs(low)))
        grid = np.linspace(low - 0.1 * spread, high + 0.1 * spread, 300)
        # A density in standardised units z = (x − offset)/unit is divided by unit in x.
        densities = marginal_densities(parameters, j, (grid - offset[j]) / unit[j]) / unit[j]
        for component, density in enumerate(densities):
            axes.plot(grid, density, color=colours[component], linewidth=1.1)
        axes.plot(grid, densities.sum(axis=0), color="black", linewidth=2.0)
        name = names[j] if j < len(names) else f"feature {j}"
        # Drawn in the input's units (standardised features are mapped back to them).
        _style(axes, f"{name} (input units)", "probability density", name)
        axes.locator_params(axis="x", nbins=5)
    return figure


def marginals_figure(parameters: GaussianParameters, rows: FloatArray,
                     names: Sequence[str], mean: Sequence[float],
                     scale: Sequence[float]) -> bytes:
    """:func:`draw_marginals` as PNG bytes."""
    return _png(draw_marginals(parameters, rows, names, mean, scale))
