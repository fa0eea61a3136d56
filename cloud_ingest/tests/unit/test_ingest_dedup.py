# SPDX-License-Identifier: Apache-2.0
"""Range sets and the durable de-duplication state."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from ironlink_ingest.dedup import Dedup
from ironlink_ingest.ranges import RangeSet, to_ranges


def test_to_ranges() -> None:
    assert to_ranges([5, 1, 2, 3, 9, 10, 2]) == [(1, 3), (5, 5), (9, 10)]
    assert to_ranges([]) == []


@pytest.mark.parametrize("seed", range(20))
def test_rangeset_matches_a_python_set(seed: int) -> None:
    rng = random.Random(seed)
    rs, ref = RangeSet(10_000), set()
    for _ in range(200):
        lo = rng.randrange(0, 1000)
        hi = lo + rng.randrange(0, 20)
        rs.add_range(lo, hi)
        ref.update(range(lo, hi + 1))
    assert all((s in rs) == (s in ref) for s in range(-5, 1100))
    ranges = list(rs)
    assert ranges == to_ranges(ref)  # disjoint, non-adjacent, sorted
    assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(ranges))


def test_newest_first_delivery_is_not_mistaken_for_duplicates() -> None:
    """Newest batch first, then the backlog oldest first: a high-water mark would drop the backlog."""
    rs = RangeSet()
    rs.add(range(901, 1001))  # the newest batch after reconnect
    assert 1 not in rs and 500 not in rs  # the backlog is still new
    for lo in range(1, 901, 100):
        rs.add(range(lo, lo + 100))
    assert list(rs) == [(1, 1000)]  # merged back into one range


def test_eviction_forgets_the_oldest_ranges_never_merges_gaps() -> None:
    rs = RangeSet(max_ranges=3)
    for lo in (10, 20, 30, 40):
        rs.add_range(lo, lo + 1)
    assert list(rs) == [(20, 21), (30, 31), (40, 41)]
    assert 25 not in rs  # a gap is never marked as seen


def test_pending_marks_count_until_released() -> None:
    d = Dedup(None)
    d.mark_pending(1, "sp", [1, 2, 3])
    assert d.is_duplicate("sp", 2) and not d.is_duplicate("sp", 4) and not d.is_duplicate("other", 2)
    d.release(1)
    assert not d.is_duplicate("sp", 2)


def test_commit_is_durable_across_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dedup.sqlite"
    d = Dedup(path)
    d.mark_pending(1, "sp", range(1, 101))
    d.commit({"sp": list(range(1, 101)), "sp2": [7]})
    d.release(1)
    d.close()
    d2 = Dedup(path)
    assert d2.is_duplicate("sp", 1) and d2.is_duplicate("sp", 100) and not d2.is_duplicate("sp", 101)
    assert d2.is_duplicate("sp2", 7) and d2.spools == 2


def test_uncommitted_pending_marks_are_not_persisted(tmp_path: Path) -> None:
    path = tmp_path / "dedup.sqlite"
    d = Dedup(path)
    d.mark_pending(1, "sp", [1, 2])
    d.close()  # crash before the write succeeded
    assert not Dedup(path).is_duplicate("sp", 1)


def test_spools_are_bounded_lru(tmp_path: Path) -> None:
    d = Dedup(tmp_path / "d.sqlite", max_spools=2)
    d.commit({"a": [1]})
    d.commit({"b": [1]})
    d.commit({"a": [2]})  # a is now the most recently used
    d.commit({"c": [1]})
    assert d.is_duplicate("a", 1) and d.is_duplicate("c", 1) and not d.is_duplicate("b", 1)
    d.close()
    d2 = Dedup(tmp_path / "d.sqlite", max_spools=2)
    assert d2.spools == 2 and not d2.is_duplicate("b", 1)


def test_compaction_keeps_the_table_small(tmp_path: Path) -> None:
    d = Dedup(tmp_path / "d.sqlite")
    for lo in range(1, 50_001, 2):  # 25k commits of contiguous pairs -> one range
        d.commit({"sp": [lo, lo + 1]})
    assert d._rows < 10_001  # compacted at least once
    d.compact()
    assert d._rows == 1
