"""What the first pass read of each partition, to recognise the same rows when a partition is
read from the input again (see :mod:`.block_store`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..errors import InputChangedError
from ..kernels import FeatureMoments

if TYPE_CHECKING:
    from .block_store import StoredPartition


class PartitionDigest(NamedTuple):
    """What the first pass read of one partition, to recognise the same rows again: a few
    numbers, as every pass's closure carries one per partition."""

    n_rows: int
    weight: float
    mean_sum: float  # Σ_j mean_j over the features
    mean_squares: float  # Σ_j mean_j²

    @classmethod
    def of(cls, stored: StoredPartition) -> PartitionDigest:
        return cls.of_moments(stored.n_rows, stored.moments)

    @classmethod
    def of_moments(cls, n_rows: int, moments: FeatureMoments | None) -> PartitionDigest:
        if moments is None:
            return cls(n_rows, 0.0, 0.0, 0.0)
        return cls(n_rows, float(moments.weight), float(moments.mean.sum()),
                   float(np.square(moments.mean).sum()))

    def check_same(self, partition: int, now: PartitionDigest) -> None:
        """Raise when ``now``, the partition read again, differs from this first reading.

        Raises
        ------
        InputChangedError
            Naming the partition and what differs.
        """
        difference = self.differs(now)
        if difference:
            raise InputChangedError(
                f"partition {partition} of the input changed during the fit: read again "
                f"after its stored rows were lost, it has {difference}. The input was "
                "modified while the fit ran (an upstream job overwriting its files?); rerun "
                "the fit once the input is stable")

    def differs(self, other: PartitionDigest) -> str:
        """What differs from ``other``, in words ("" when the rows are the same)."""
        if self.n_rows != other.n_rows:
            return f"{self.n_rows} rows at the first pass, {other.n_rows} now"
        # Merged in the same order from the same rows, these agree to rounding.
        a, b = np.array(self[1:]), np.array(other[1:])
        scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
        if np.any(np.abs(a - b) / scale > 1e-9):
            return (f"the same {self.n_rows} rows with other values (feature means summing "
                    f"to {self.mean_sum:.6g} at the first pass, {other.mean_sum:.6g} now)")
        return ""
