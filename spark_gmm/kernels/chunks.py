"""How many rows the kernels process at a time."""

from __future__ import annotations

# Values per chunk (8 bytes each): 4 MB was fastest here for D = 10 and D = 50 in the packed
# kernel (2 MB to 8 MB within 5 %; 256 kB or 8 MB+ up to 40 % slower), and keeps the exact
# kernel's (chunk, K*D) projection cache-sized too.
_TARGET_VALUES = 1 << 19
_MIN_ROWS = 64


def rows_per_chunk(values_per_row: int, max_rows: int) -> int:
    """Rows per chunk so that a chunk holds about 4 MB of ``values_per_row``-wide rows,
    between 64 and ``max_rows`` rows."""
    rows = _TARGET_VALUES // max(1, values_per_row)
    return int(min(max_rows, max(_MIN_ROWS, rows)))
