"""Initial mixtures for EM: k-means‖, k-means++ on a sample, random rows, or a given model.

Every mode works on passes over the stored rows (a :class:`~spark_gmm.runtime.passes.PassRunner`
runs each request of :mod:`spark_gmm.runtime.requests`), and all ``nInit`` restarts share each
pass.

k-means‖ (Bahmani et al. 2012, as MLlib's KMeans does it, on our passes): one pass draws a
first centre per restart; each of :data:`KMEANS_PARALLEL_ROUNDS` passes adds about ℓ = 2k
rows drawn with probability proportional to their squared distance to the centres so far;
one pass weighs the candidates by the rows nearest to them; weighted k-means++ and Lloyd
on the driver reduce them to k centres; up to :data:`LLOYD_PASSES` Lloyd passes over the
data refine them; the final hard-assignment pass turns them into a mixture.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..kernels import (
    ConjugatePrior,
    GaussianParameters,
    SufficientStatistics,
    covariance_of,
    m_step,
)
from ..kernels.kmeans import kmeans_plus_plus, lloyd
from ..runtime.passes import PassRunner
from ..runtime.requests import (
    CandidatesRequest,
    ClusterSumsRequest,
    SampleRequest,
    centre_arrays,
)
from .em import pass_statistics
from .param_rules import PARAMETERS

logger = logging.getLogger(__name__)

# Rows of the driver-side sample for k-means++: enough for stable centres, small enough for
# the driver (5,000 rows per component, at most 200,000).
_SAMPLE_ROWS_PER_COMPONENT = 5000
_MAX_SAMPLE_ROWS = 200_000
KMEANS_PARALLEL_ROUNDS = 2  # MLlib's initSteps
LLOYD_PASSES = 5
# Lloyd passes stop once no centre moves by more than this share of the data's spread.
_LLOYD_TOLERANCE = 1e-2


@dataclass(frozen=True)
class InitialisationInput:
    """What every initialisation mode may use."""

    center: np.ndarray
    variance: np.ndarray
    runner: PassRunner
    k: int
    covariance_type: str
    reg_covar: float
    seed: int
    n_init: int
    prior: ConjugatePrior | None = None  # MAP-EM: the hard-assignment M-step's too

    @property
    def seeds(self) -> list[int]:
        return [self.seed + restart for restart in range(self.n_init)]


def _diagonal_covariances(variance: np.ndarray, k: int, covariance_type: str,
                          reg_covar: float) -> np.ndarray:
    # A constant feature has zero variance; fall back to 1 so the start is well defined.
    var = np.where(variance > 0, variance, 1.0) + reg_covar
    return covariance_of(covariance_type).from_variances(var, k)


def _placeholders(variance: np.ndarray, reg_covar: float, centre_sets: list[np.ndarray],
                  covariance_type: str) -> list[GaussianParameters]:
    """Mixtures with these centres (centred coordinates) and the data's diagonal spread."""
    return [GaussianParameters.from_covariances(
        np.full(len(c), 1.0 / len(c)), c,
        _diagonal_covariances(variance, len(c), covariance_type, reg_covar),
        covariance_type) for c in centre_sets]


def _random_rows(spec: InitialisationInput) -> list[GaussianParameters]:
    samples = spec.runner.run(SampleRequest(tuple(spec.seeds), spec.k, distinct=True))
    for sample in samples:
        if sample.rows.shape[0] < spec.k:
            raise InvalidInputError(f"k={spec.k} but the data have only "
                                    f"{sample.rows.shape[0]} distinct rows; reduce k")
    return _placeholders(spec.variance, spec.reg_covar,
                         [s.rows - spec.center for s in samples], spec.covariance_type)


def _kmeans_plus_plus_centres(spec: InitialisationInput) -> list[np.ndarray]:
    size = min(_MAX_SAMPLE_ROWS, _SAMPLE_ROWS_PER_COMPONENT * spec.k)
    samples = spec.runner.run(SampleRequest(tuple(spec.seeds), size, distinct=False))
    centres = []
    for seed, sample in zip(spec.seeds, samples):
        x = sample.rows - spec.center
        centres.append(lloyd(x, kmeans_plus_plus(x, spec.k, np.random.default_rng(seed))))
    return centres


def _timed(label: str, step: Callable[[], list]) -> list:
    started = time.perf_counter()
    result = step()
    logger.info("initialisation: %s, %.3f s", label, time.perf_counter() - started)
    return result


def _kmeans_parallel_centres(specs: Sequence[InitialisationInput]) -> list[np.ndarray]:
    """k-means‖ centres of every restart of every spec (fits of one data set sharing each
    pass: ``fitMultiple``), in spec then restart order. Each restart's centres are what its
    spec alone would get."""
    runner = specs[0].runner
    owners = [index for index, spec in enumerate(specs) for _ in spec.seeds]
    seeds = [seed for spec in specs for seed in spec.seeds]
    first = _timed("first centres", lambda: runner.run(SampleRequest(tuple(seeds), 1,
                                                                     distinct=False)))
    centres = [s.rows - specs[o].center for s, o in zip(first, owners)]
    oversampling = tuple(2.0 * specs[o].k for o in owners)
    for step in range(KMEANS_PARALLEL_ROUNDS):
        round_seeds = [seed * 7919 + 104729 * (step + 1) for seed in seeds]
        rounds = _timed(f"k-means|| round {step + 1} of {KMEANS_PARALLEL_ROUNDS}",
                        lambda c=centres, s=round_seeds: runner.run(CandidatesRequest(
                            centre_arrays(c), tuple(s), oversampling)))
        centres = [np.vstack([c, r.chosen()]) for c, r in zip(centres, rounds)]
    # Each candidate weighs as much as the rows nearest to it; then k of them are chosen.
    weighing = _timed(f"weighing {sum(len(c) for c in centres)} candidates",
                      lambda: runner.run(ClusterSumsRequest(centre_arrays(centres))))
    local = []
    for seed, owner, candidates, sums in zip(seeds, owners, centres, weighing):
        weights = sums.counts
        chosen = kmeans_plus_plus(candidates, specs[owner].k, np.random.default_rng(seed),
                                  weights)
        local.append(lloyd(candidates, chosen, max_iter=30, weights=weights))
    return _lloyd_passes(specs, owners, local)


def _lloyd_passes(specs: Sequence[InitialisationInput], owners: list[int],
                  centres: list[np.ndarray]) -> list[np.ndarray]:
    spread = float(np.sqrt(np.mean(specs[0].variance))) or 1.0
    moving = set(range(len(specs)))  # a spec stops once none of its restarts moves much
    for step in range(LLOYD_PASSES - 1):  # the final hard-assignment pass is one more
        active = [i for i, owner in enumerate(owners) if owner in moving]
        if not active:
            break
        sums = _timed(f"Lloyd pass {step + 1}", lambda a=active: specs[0].runner.run(
            ClusterSumsRequest(centre_arrays(centres[i] for i in a))))
        moved = dict.fromkeys(moving, 0.0)
        for index, step_sums in zip(active, sums):
            new = step_sums.centres(centres[index])
            moved[owners[index]] = max(moved[owners[index]], float(
                np.max(np.linalg.norm(new - centres[index], axis=1))))
            centres[index] = new
        moving = {spec for spec, most in moved.items() if most > _LLOYD_TOLERANCE * spread}
    return centres


def mixtures_from_centres(statistics: Callable[..., list[SufficientStatistics]],
                          centres: list[np.ndarray], variance: np.ndarray,
                          covariance_types: Sequence[str], reg_covars: Sequence[float],
                          priors: Sequence[ConjugatePrior | None] | None = None
                          ) -> list[GaussianParameters]:
    """One hard-assignment pass turns each set of centres (centred coordinates) into a
    mixture of its covariance type: the weights, means and covariances of the rows nearest
    to each centre.

    ``statistics(models, hard_assignment=True)`` is the pass: :func:`.em.pass_statistics`
    of a pass runner, or :func:`~spark_gmm.kernels.block_statistics` over rows in memory.
    ``covariance_types``, ``reg_covars`` and ``priors`` (MAP-EM: the posterior mode of
    the hard assignment; None: none) have one entry per centre set.
    """
    placeholders = [_placeholders(variance, reg, [c], kind)[0]
                    for c, kind, reg in zip(centres, covariance_types, reg_covars)]
    stats = statistics(placeholders, hard_assignment=True)
    priors = priors if priors is not None else [None] * len(centres)
    return [m_step(s, kind, reg, prior)[0]
            for s, kind, reg, prior in zip(stats, covariance_types, reg_covars, priors)]


def initial_mixtures(spec: InitialisationInput, init_mode: str) -> list[GaussianParameters]:
    """``spec.n_init`` starting mixtures, in coordinates centred at ``spec.center``."""
    return initial_mixtures_together([spec], [init_mode])[0]


def initial_mixtures_together(specs: Sequence[InitialisationInput], init_modes: Sequence[str]
                              ) -> list[list[GaussianParameters]]:
    """The starting mixtures of several fits of one data set (one list per spec).

    The k-means‖ fits share every pass (sampling, candidate rounds, weighing, Lloyd and the
    final hard assignment); the other modes take a pass or two each. Each spec's mixtures
    are what it would get alone.
    """
    for mode in init_modes:
        PARAMETERS["initMode"].check(mode)
    result: list[list[GaussianParameters] | None] = [None] * len(specs)
    parallel = [i for i, (spec, mode) in enumerate(zip(specs, init_modes))
                if mode == "k-means||" and spec.k > 1]
    centred: list[tuple[int, list[np.ndarray]]] = []  # (spec, its restarts' centres)
    if parallel:
        chosen = iter(_kmeans_parallel_centres([specs[i] for i in parallel]))
        centred += [(i, [next(chosen) for _ in specs[i].seeds]) for i in parallel]
    for i, (spec, mode) in enumerate(zip(specs, init_modes)):
        if i in parallel:
            continue
        if mode == "random":
            result[i] = _random_rows(spec)
        elif spec.k == 1:  # one cluster: its k-means centre is the data mean
            centred.append((i, [np.zeros((1, spec.center.shape[0]))] * spec.n_init))
        else:
            centred.append((i, _kmeans_plus_plus_centres(spec)))
    if centred:
        owners = [i for i, sets in centred for _ in sets]
        mixtures = iter(mixtures_from_centres(
            pass_statistics(specs[0].runner), [c for _, sets in centred for c in sets],
            specs[0].variance,
            [specs[o].covariance_type for o in owners], [specs[o].reg_covar for o in owners],
            [specs[o].prior for o in owners]))
        for i, sets in centred:
            result[i] = [next(mixtures) for _ in sets]
    assert all(r is not None for r in result)
    return [r for r in result if r is not None]


def from_initial_model(params: GaussianParameters, k: int, n_features: int,
                       covariance_type: str, center: np.ndarray) -> GaussianParameters:
    """A user-supplied model as the starting point, after checking it fits the data."""
    if params.n_components != k or params.n_features != n_features:
        raise InvalidInputError(
            f"the initial model has k={params.n_components} and {params.n_features} features, "
            f"but the estimator has k={k} and the data {n_features} features; set k to match "
            "or pass a model fitted on the same features"
        )
    if params.covariance_type != covariance_type:
        raise InvalidInputError(
            f"the initial model has covarianceType={params.covariance_type!r} but the estimator "
            f"has {covariance_type!r}; set covarianceType to match"
        )
    return params.shifted(-center)

