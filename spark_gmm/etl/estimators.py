"""The fit job's two estimators, chosen by ``[model] estimator``: ``"mixture"``
(:class:`~spark_gmm.ml.estimator.GaussianMixture`, maximum likelihood or MAP-EM) and
``"bayesian"`` (:class:`~spark_gmm.ml.bayesian.BayesianGaussianMixture`, variational Bayes):
the Bayesian estimator as the config sets it, and what a Bayesian model adds to
``diagnostics.json``."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np

from ..fit.prior import scale_matrix
from ..ml.bayesian import BayesianGaussianMixture
from ..ml.bayesian_model import EFFECTIVE_WEIGHT, BayesianGaussianMixtureModel
from ..ml.model import GaussianMixtureModel
from .config import JobConfig
from .prepare import FEATURES, FeatureSchema

#: A model the fit job writes and the score job reads.
FittedModel: TypeAlias = GaussianMixtureModel | BayesianGaussianMixtureModel


def estimator_of(model: FittedModel) -> str:
    """``"bayesian"`` or ``"mixture"``: the ``[model] estimator`` that fits ``model``."""
    return "bayesian" if isinstance(model, BayesianGaussianMixtureModel) else "mixture"


def in_model_units(mean: tuple[float, ...] | None, scale: tuple[float, ...] | None,
                   schema: FeatureSchema) -> tuple[list[float] | None, list[float] | None]:
    """A prior's mean [D] and scale (1, D or D×D values) set in the features' units, in the
    units the estimator sees: with standardisation μ → (μ − m)/s and Λ_ij → Λ_ij/(s_i s_j)
    (Λ then as D×D values); unset ones stay None (the fit takes them from the rows)."""
    if schema.mean:
        shift, unit = np.array(schema.mean), np.array(schema.scale)
        if mean is not None and len(mean) == len(unit):  # else the fit names the length
            mean = tuple((np.array(mean) - shift) / unit)
        if scale is not None:
            scale = tuple((scale_matrix(scale, len(unit)) / np.outer(unit, unit)).ravel())
    return (None if mean is None else [float(v) for v in mean],
            None if scale is None else [float(v) for v in scale])


def bayesian_estimator(config: JobConfig, schema: FeatureSchema) -> BayesianGaussianMixture:
    """The :class:`BayesianGaussianMixture` of ``config.model`` (one k, its upper bound, and
    one covariance type; ``mean_prior`` and ``covariance_prior`` in the features' units)."""
    m = config.model
    mean, covariance = in_model_units(m.mean_prior, m.covariance_prior, schema)
    estimator = BayesianGaussianMixture(
        k=m.k_values[0], covarianceType=m.covariance_types[0], maxIter=m.max_iter, tol=m.tol,
        regCovar=m.reg_covar, initMode=m.init_mode, nInit=m.n_init, seed=m.seed,
        aggregationDepth=m.aggregation_depth, featuresCol=FEATURES,
        weightCol=config.input.weight_column or None,
        weightConcentrationPriorType=m.weight_concentration_prior_type,
        weightConcentrationPrior=m.weight_concentration_prior,
        meanPrecisionPrior=m.mean_precision_prior, meanPrior=mean,
        degreesOfFreedomPrior=m.degrees_of_freedom_prior, covariancePrior=covariance)
    return estimator


def pruned_components(weights: np.ndarray) -> list[int]:
    """The components whose expected weight is at most
    :data:`~spark_gmm.ml.bayesian_model.EFFECTIVE_WEIGHT` (pruned by the weight prior)."""
    return [int(j) for j in np.flatnonzero(np.asarray(weights) <= EFFECTIVE_WEIGHT)]


def bayesian_diagnostics(model: BayesianGaussianMixtureModel) -> dict[str, Any]:
    """What ``diagnostics.json`` holds of a variational fit: the lower bound (no
    log-likelihood, BIC or AIC: the model is a posterior, not a point estimate), the weights,
    the effective and the pruned components, and the priors the fit used."""
    summary, prior = model.summary, model.prior
    return {
        "lower_bound": summary.lowerBound, "lower_bound_history": summary.lowerBoundHistory,
        "restart_lower_bounds": summary.restartLowerBounds, "num_iter": summary.numIter,
        "converged": summary.converged, "weights": model.weights.tolist(),
        "effective_components": summary.effectiveComponents,
        "effective_weight_threshold": EFFECTIVE_WEIGHT,
        "pruned_components": pruned_components(model.weights),
        "bayesian_prior": {"weight_concentration_prior_type": prior.weight_type,
                           "weight_concentration_prior": prior.weight_concentration,
                           "mean_precision_prior": prior.mean_precision,
                           "degrees_of_freedom_prior": prior.dof},
    }
