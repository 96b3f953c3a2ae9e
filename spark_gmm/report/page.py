"""The fit report: one self-contained HTML page (figures inlined as PNG data URIs), so that it
can be mailed, archived beside the artifact or opened from a CI job's files."""

from __future__ import annotations

import base64
import html
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..kernels import GaussianParameters, e_step
from ..kernels.covariance import FloatArray
from .figures import PAGE_WIDTH_PX

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def require_matplotlib() -> None:
    """Raise a clear error when the optional ``report`` extra is not installed.

    Raises
    ------
    InvalidInputError
        matplotlib cannot be imported.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise InvalidInputError(
            "the fit report needs matplotlib, which is not installed: "
            "pip install 'spark-gmm[report]' (or turn report.enabled off)") from error


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report shows, read from a model artifact or a fit.

    Attributes
    ----------
    parameters : GaussianParameters
        The fitted mixture, in the units it was fitted in (standardised when ``scale`` is set).
    feature_names : list of str
        One per feature (D).
    mean, scale : sequence of float
        The standardisation, (D,) each; empty when the features were not standardised.
    histories : list of list of float
        Total log-likelihood per iteration of every restart.
    cluster_sizes : list of int
        Training rows per component (K).
    criteria : dict
        ``bic``, ``aic`` and ``icl`` of the chosen model (``icl`` may be None).
    selection : dict or None
        ``criterion``, ``chosen`` ({k, covarianceType}) and ``table`` (one dict per model,
        with k, covarianceType, bic, aic, icl) when the fit chose among several models.
    sample : ndarray of shape (n, D) or None
        Training rows in the model's units (None when the artifact holds no sample).
    facts : list of (str, str)
        The run's facts, in display order.
    title : str
    estimator : str
        ``GaussianMixture`` or ``BayesianGaussianMixture``.
    objective : str
        What ``histories`` hold: ``log-likelihood``, or a Bayesian fit's ``lower bound``.
    scoring : GaussianParameters or None
        The mixture whose responsibilities predict a row's component (a Bayesian model's
        scoring mixture; None: ``parameters``).
    effective_weight : float or None
        A Bayesian model's effective-component threshold: components whose weight is at
        most this are pruned (None for a GaussianMixture).
    noise_size : int or None
        With a noise component: the training rows labelled noise (−1).
    """

    parameters: GaussianParameters
    feature_names: list[str]
    mean: Sequence[float]
    scale: Sequence[float]
    histories: list[list[float]]
    cluster_sizes: list[int]
    criteria: dict[str, float | None]
    selection: dict[str, Any] | None
    sample: FloatArray | None
    facts: list[tuple[str, str]] = field(default_factory=list)
    title: str = "Gaussian mixture fit"
    estimator: str = "GaussianMixture"
    objective: str = "log-likelihood"
    scoring: GaussianParameters | None = None
    effective_weight: float | None = None
    noise_size: int | None = None

    @property
    def effective(self) -> list[int]:
        """The components above :attr:`effective_weight` (all without one)."""
        weights = self.parameters.weights
        if self.effective_weight is None:
            return list(range(len(weights)))
        return [int(j) for j in np.flatnonzero(weights > self.effective_weight)]


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _section(title: str, body: str, note: str = "") -> str:
    caption = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f"<section><h2>{html.escape(title)}</h2>{caption}{body}</section>"


def _facts_table(facts: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
                   for name, value in facts)
    return f'<table class="facts">{rows}</table>'


def _pruned_section(inputs: ReportInputs) -> str:
    """A Bayesian model's components: weight, rows, effective or pruned (no BIC: the model
    is a posterior, its K an upper bound)."""
    p, threshold = inputs.parameters, inputs.effective_weight
    effective = set(inputs.effective)
    rows = "".join(
        f"<tr><th>{j}</th><td>{w:.6g}</td><td>{size}</td><td>"
        f"{'effective' if j in effective else f'pruned (weight ≤ {threshold:g})'}</td></tr>"
        for j, (w, size) in enumerate(zip(p.weights, inputs.cluster_sizes)))
    table = ('<table class="facts"><tr><th>component</th><th>weight</th>'
             f"<th>training rows</th><th></th></tr>{rows}</table>")
    return _section(
        "Effective and pruned components", table,
        f"{len(effective)} effective components of K = {p.n_components} (the upper bound): "
        f"the weight prior left {p.n_components - len(effective)} with an expected weight at "
        f"or below {threshold:g}. A variational fit has no BIC: it chooses the number of "
        "components itself.")


def _selection_section(inputs: ReportInputs) -> str:
    from .figures import criteria_figure

    if inputs.effective_weight is not None:
        return _pruned_section(inputs)
    selection = inputs.selection
    p = inputs.parameters
    if not selection:
        values = ", ".join(f"{name.upper()} {value:.6g}" for name, value
                           in inputs.criteria.items() if value is not None)
        return _section("Choosing K", f"<p>{html.escape(values)}</p>",
                        f"One model was fitted (K = {p.n_components}, {p.covariance_type}); "
                        "list several values of model.k or model.covariance_type (or use "
                        "select_model) to compare them here.")
    chosen = (selection["chosen"]["k"], selection["chosen"]["covarianceType"])
    criterion = selection["criterion"]
    return _section(
        "Choosing K", _image(criteria_figure(selection["table"], chosen, criterion),
                             "BIC, AIC and ICL against K"),
        f"{len(selection['table'])} models fitted; the lowest {criterion.upper()} chose "
        f"K = {chosen[0]}, {chosen[1]} (starred).")


def _sections(inputs: ReportInputs) -> list[str]:
    from .figures import likelihood_figure, marginals_figure, plane_figure, weights_figure

    p = inputs.parameters
    finals = [h[-1] if h else -np.inf for h in inputs.histories]
    chosen = int(np.argmax(finals)) if finals else 0
    objective = inputs.objective
    sections = [_section("Run", _facts_table(inputs.facts))]
    if inputs.histories:
        sections.append(_section(
            f"{objective.capitalize()} per iteration",
            _image(likelihood_figure(inputs.histories, chosen, objective),
                   f"{objective} per iteration"),
            f"{len(inputs.histories)} restart(s); the chosen one (the highest final "
            f"{objective}) is the bold black line, drawn above the others."))
    sections.append(_selection_section(inputs))
    sections.append(_section(
        "Weights and cluster sizes",
        _image(weights_figure(p.weights.tolist(), inputs.cluster_sizes,
                              inputs.effective_weight,
                              (p.noise_weight, inputs.noise_size or 0) if p.has_noise
                              else None), "weights and sizes"),
        "" if not p.has_noise else
        f"The noise component (density 1/V, log V = {p.noise_log_volume:.6g}) holds "
        f"{p.noise_weight:.1%} of the weight and {inputs.noise_size or 0} training rows "
        "(labelled −1), drawn hatched."))
    if inputs.sample is None or len(inputs.sample) == 0:
        sections.append(_section("Rows", "<p>The artifact holds no sample of training rows "
                                 "(fitted by an older version): refit to see them.</p>"))
        return sections
    # Rows with missing features (missingFeatures="marginalize") have no point in the plane:
    # the plane shows the complete rows, the histograms every row's observed values.
    complete = inputs.sample[~np.isnan(inputs.sample).any(axis=1)]
    labels = e_step(complete, inputs.scoring or p)[2]
    left_out = len(inputs.sample) - len(complete)
    shown = min(p.n_features, 24)
    pruned = inputs.effective_weight is not None
    sections.append(_section(
        "Rows on the first two principal axes",
        _image(plane_figure(p, complete, labels, inputs.effective if pruned else None),
               "rows by predicted component"),
        f"{len(complete)} sampled training rows coloured by predicted component"
        + (f" ({left_out} sampled rows with missing features are left out)" if left_out
           else "") + "; "
        "ellipses are each component's 1σ (solid) and 2σ (dashed) contours in this plane"
        + (" (effective components only; means and covariances are the posterior's "
           "expectations)" if pruned else "")
        + ("; the rows the noise component takes are grey crosses" if p.has_noise else "")
        + "."))
    sections.append(_section(
        "Features",
        _image(marginals_figure(p, inputs.sample, inputs.feature_names, inputs.mean,
                                inputs.scale), "per-feature histograms"),
        "Histograms of the sampled rows' observed values with the fitted marginal densities "
        "(black: the mixture; coloured: each weighted component)"
        + (", in the original units" if len(inputs.scale) else "")
        + (f"; the first {shown} of {p.n_features} features" if shown < p.n_features else "")
        + "."))
    return sections


# The content column is as wide as the figures (figures.PAGE_WIDTH_PX): on a 1280-px window
# each figure fills it at its own size; on a narrower one it shrinks with the column.
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em;
       max-width: PAGE_WIDTHpx; color: #222; background: #fff; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; }
section { margin-bottom: 2em; } img { width: 100%; height: auto; display: block; }
.note { color: #555; font-size: 0.9em; }
table.facts { border-collapse: collapse; font-size: 0.92em; }
table.facts th { text-align: left; padding: 2px 18px 2px 0; font-weight: 600; }
table.facts td { padding: 2px 0; font-family: ui-monospace, monospace; }
""".replace("PAGE_WIDTH", str(PAGE_WIDTH_PX))


def render_report(inputs: ReportInputs) -> str:
    """The report page as one HTML string."""
    require_matplotlib()
    p = inputs.parameters
    k = (f"K = {p.n_components}" if inputs.effective_weight is None else
         f"{inputs.estimator}, K = {p.n_components} (upper bound; {len(inputs.effective)} "
         "effective)")
    heading = f"{inputs.title}: {k}, {p.covariance_type} covariance, {p.n_features} features"
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(heading)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(heading)}</h1>" + "".join(_sections(inputs))
            + "</body></html>\n")


def write_report(inputs: ReportInputs, directory: str) -> str:
    """Write ``directory/report.html`` (creating the directory) and return its path.

    Raises
    ------
    InvalidInputError
        matplotlib is missing (install the ``report`` extra).
    """
    page = render_report(inputs)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, REPORT_FILE)
    temporary = path + ".partial"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(page)
    os.replace(temporary, path)  # a reader never sees half a page
    logger.info("wrote the fit report %s (%d KB)", path, len(page) // 1024)
    return path
