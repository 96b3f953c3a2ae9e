"""The uniform noise component of a fit (Banfield & Raftery 1993; R mclust's ``Vinv``).

One more component of constant density 1/V joins the Gaussians after their initialisation:
V is the volume of the training rows' bounding box (the storing pass's per-feature minimum
and maximum) unless given, and its starting weight is taken from the Gaussians in proportion
to theirs. EM then updates its weight like any other (:func:`~spark_gmm.kernels.m_step`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..kernels import FeatureMoments, GaussianParameters


@dataclass(frozen=True)
class NoiseSettings:
    """The estimator's noise params.

    Attributes
    ----------
    volume : float or None
        V; None: the volume of the rows' bounding box.
    initial_weight : float
        π_0 when EM starts, in (0, 1).
    """

    volume: float | None = None
    initial_weight: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return {"volume": self.volume, "initialWeight": self.initial_weight}

    def log_volume(self, moments: FeatureMoments) -> float:
        """log V: of ``volume``, or of the bounding box of the rows ``moments`` measured.

        Raises
        ------
        InvalidInputError
            The bounding box has no volume (a feature takes one value) and no volume is
            given.
        """
        if self.volume is not None:
            return math.log(self.volume)
        if moments.minimum is None or moments.maximum is None:
            raise InvalidInputError("the noise component's volume needs the rows' bounding "
                                    "box, which the storing pass did not measure; set "
                                    "noiseVolume")
        sides = moments.maximum - moments.minimum
        if not np.all(sides > 0) or not np.all(np.isfinite(sides)):
            flat = [int(i) for i in np.flatnonzero(~(sides > 0))]
            raise InvalidInputError(
                f"the training rows' bounding box has no volume (features {flat} take a "
                "single value), so the noise component's density 1/V is undefined; set "
                "noiseVolume or drop those features")
        return float(np.sum(np.log(sides)))

    def start(self, params: GaussianParameters, log_volume: float) -> GaussianParameters:
        """``params`` with the noise component at its initial weight: the Gaussians keep
        1 − ``initial_weight`` in proportion to their weights."""
        return params.with_noise(self.initial_weight, log_volume)


def starting_mixture(params: GaussianParameters, noise: NoiseSettings | None,
                     moments: FeatureMoments) -> GaussianParameters:
    """A restart's initial mixture as EM takes it: with the noise component at its initial
    weight when ``noise`` is set, without one otherwise (an initial model's noise dropped,
    the Gaussians' weights renormalised)."""
    if noise is not None:
        return noise.start(params, noise.log_volume(moments))
    if not params.has_noise:
        return params
    return GaussianParameters.from_covariances(params.weights / params.weights.sum(),
                                               params.means, params.covariances,
                                               params.covariance_type)
