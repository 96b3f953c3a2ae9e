"""Rows chosen pseudo-randomly and identically whatever the partitioning.

Each row gets a pseudo-random key from its own values and the seed, so the rows chosen do
not depend on how the data are partitioned or ordered: the same seed and data give the same
initial model on any cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np

from .block_store import BlockStore
from .input_checks import Block

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def row_keys(x: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit pseudo-random key per row, a pure function of the row's values and ``seed``."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    keys = _splitmix64(np.full(x.shape[0], np.uint64(seed & 0xFFFFFFFFFFFFFFFF)))
    for column in range(x.shape[1]):
        keys = _splitmix64(keys ^ bits[:, column])
    return keys


def _smallest_keys(size: int, distinct: bool, keys: np.ndarray, rows: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    if distinct:
        keys, first = np.unique(keys, return_index=True)
        rows = rows[first]
    # Equal keys belong to equal rows (up to 2⁻⁶⁴ collisions), so ties need no order.
    order = np.argsort(keys, kind="stable")[:size]
    return keys[order], rows[order]


Sample = tuple[np.ndarray, np.ndarray]


def _partition_sample(seed: int, size: int, distinct: bool, blocks: Iterator[Block]
                      ) -> Sample | None:
    best: Sample | None = None
    for x, _ in blocks:
        candidate = _smallest_keys(size, distinct, row_keys(x, seed), x)
        best = candidate if best is None else _merge_samples(size, distinct, best, candidate)
    return best


def _merge_samples(size: int, distinct: bool, a: Sample, b: Sample) -> Sample:
    return _smallest_keys(size, distinct, np.concatenate([a[0], b[0]]),
                          np.concatenate([a[1], b[1]]))


def sample_rows(store: BlockStore, size: int, seed: int, distinct: bool, depth: int
                ) -> np.ndarray:
    """Up to ``size`` rows chosen pseudo-randomly and identically for any partitioning.

    With ``distinct`` no two returned rows are equal. Memory on the driver and in each
    reduce step stays at ``size`` rows.
    """
    sample = store.aggregate(partial(_partition_sample, seed, size, distinct),
                             partial(_merge_samples, size, distinct), depth)
    assert sample is not None, "validation rejects empty input before sampling"
    return sample[1]


