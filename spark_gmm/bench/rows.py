"""The benchmark's own look at the rows on the driver, in bounded memory.

Only scikit-learn's column and the k-means‖ quality check need every row in memory at once;
the hard start (k random rows and the global covariance), the data mean and the rescoring
of MLlib's model stream the Parquet files a batch at a time, so that a 50M-row run does not
hold several copies of 4 GB on the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pyarrow.dataset as ds

FloatArray = np.ndarray
_BATCH_ROWS = 1 << 20


def row_batches(path: str, columns: Sequence[str]) -> Iterator[FloatArray]:
    """The rows of the Parquet files under ``path`` in file order, as (≤ 1M, D) arrays."""
    dataset = ds.dataset(path, format="parquet")
    for batch in dataset.to_batches(columns=list(columns), batch_size=_BATCH_ROWS):
        yield np.column_stack([batch.column(i).to_numpy(zero_copy_only=False)
                               for i in range(batch.num_columns)])


def all_rows(path: str, columns: Sequence[str]) -> FloatArray:
    return np.vstack(list(row_batches(path, columns)))


def hard_start(path: str, columns: Sequence[str], n: int, k: int, seed: int
               ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """k rows drawn without replacement (``default_rng(seed).choice(n, k)``), the global
    covariance (biased, as ``np.cov(x.T, bias=True)``) and the mean, in two streamed passes."""
    chosen = np.random.default_rng(seed).choice(n, k, replace=False)
    start = np.empty((k, len(columns)))
    total, count, offset = np.zeros(len(columns)), 0, 0
    for x in row_batches(path, columns):
        here = (chosen >= offset) & (chosen < offset + len(x))
        start[here] = x[chosen[here] - offset]
        total += x.sum(axis=0)
        count += len(x)
        offset += len(x)
    mean = total / count
    scatter = np.zeros((len(columns), len(columns)))
    for x in row_batches(path, columns):
        centred = x - mean
        scatter += centred.T @ centred
    return start, scatter / count, mean


def streamed_mean(path: str, columns: Sequence[str],
                  per_row: Callable[[FloatArray], FloatArray]) -> float:
    """The mean over all rows of ``per_row`` (a function of a batch, one value per row)."""
    total, count = 0.0, 0
    for x in row_batches(path, columns):
        values = per_row(x)
        total += float(values.sum())
        count += len(values)
    return total / count
