# SPDX-License-Identifier: Apache-2.0
"""Sorted disjoint integer ranges: the set of spool seqs already stored, per spool.

The agent's seqs are a spool's monotonic row ids, but with ``newest_first`` delivery they do not arrive in
order (the newest batch first, then the backlog oldest-first in between), so a high-water mark would throw
the backlog away as "duplicates". A range set is exact whatever the order, and stays small because batches
are contiguous runs of seqs that merge with their neighbours as the backlog drains.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator


def to_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Inclusive ``(lo, hi)`` runs of the sorted, de-duplicated ``seqs``."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


class RangeSet:
    """Disjoint, non-adjacent inclusive ranges ``lo[i]..hi[i]``, sorted; at most ``max_ranges`` of them.

    When adding would exceed ``max_ranges`` the *lowest* ranges are forgotten: forgetting can only let an
    old duplicate through (InfluxDB overwrites the identical point), whereas merging ranges across a gap
    would mark unseen seqs as stored and drop them.
    """

    __slots__ = ("_hi", "_lo", "max_ranges")

    def __init__(self, max_ranges: int = 256) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []
        self.max_ranges = max_ranges

    def __len__(self) -> int:
        return len(self._lo)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._lo, self._hi, strict=True))

    def __contains__(self, seq: int) -> bool:
        i = bisect_right(self._lo, seq) - 1
        return i >= 0 and seq <= self._hi[i]

    def add_range(self, lo: int, hi: int) -> None:
        # first range that could touch [lo, hi]: its hi >= lo - 1
        i = bisect_right(self._lo, lo) - 1
        if i < 0 or self._hi[i] < lo - 1:
            i += 1
        j = i
        new_lo, new_hi = lo, hi
        while j < len(self._lo) and self._lo[j] <= hi + 1:
            new_lo = min(new_lo, self._lo[j])
            new_hi = max(new_hi, self._hi[j])
            j += 1
        self._lo[i:j] = [new_lo]
        self._hi[i:j] = [new_hi]
        excess = len(self._lo) - self.max_ranges
        if excess > 0:
            del self._lo[:excess], self._hi[:excess]

    def add(self, seqs: Iterable[int]) -> None:
        for lo, hi in to_ranges(seqs):
            self.add_range(lo, hi)
