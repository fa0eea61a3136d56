# SPDX-License-Identifier: Apache-2.0
"""``supervise``: a crashing loop is restarted with backoff; its siblings in the TaskGroup never notice."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

from ironlink_service.supervisor import supervise, wait_event


class Restarts:
    """The one method ``supervise`` needs from the daemons' metrics stores."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        assert name == "restarts_total"
        self.counts[labels["task"]] += int(amount)


def test_crashing_loop_restarts_without_touching_its_sibling():
    metrics = Restarts()
    crashes: list[float] = []
    sibling_ticks: list[float] = []
    sibling_starts = 0

    async def crashing() -> None:
        crashes.append(time.monotonic())
        if len(crashes) <= 3:
            raise RuntimeError("a bug in this loop")
        await asyncio.Event().wait()  # the fourth run stays up

    async def sibling(stop: asyncio.Event) -> None:
        nonlocal sibling_starts
        sibling_starts += 1
        while not stop.is_set():
            sibling_ticks.append(time.monotonic())
            await wait_event(stop, 0.01)

    async def main() -> None:
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            crash_task = tg.create_task(
                supervise("crashing", crashing, stop, metrics, backoff_initial_s=0.2, backoff_max_s=0.4)
            )
            tg.create_task(supervise("sibling", lambda: sibling(stop), stop, metrics))
            async with asyncio.timeout(5):  # the sibling must still be ticking after the last restart
                while len(crashes) < 4 or sibling_ticks[-1] <= crashes[-1]:
                    await asyncio.sleep(0.01)
            stop.set()
            crash_task.cancel()  # its fourth run never returns by itself

    asyncio.run(main())
    assert metrics.counts == {"crashing": 3}
    assert sibling_starts == 1
    # The sibling ticked throughout: between the crashes and after the last restart.
    for a, b in itertools.pairwise(crashes):
        assert any(a < t < b for t in sibling_ticks)
    # Restart delays follow Backoff(0.2, cap 0.4): [0.1, 0.2], then [0.2, 0.4], then [0.2, 0.4].
    gaps = [b - a for a, b in itertools.pairwise(crashes)]
    assert 0.1 <= gaps[0] < 0.3 and all(0.2 <= g < 0.6 for g in gaps[1:]), gaps


def test_a_loop_that_returns_early_is_restarted_and_stop_ends_it():
    metrics = Restarts()
    runs = 0

    async def returns_early() -> None:
        nonlocal runs
        runs += 1

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            supervise("early", returns_early, stop, metrics, backoff_initial_s=0.01, backoff_max_s=0.02)
        )
        while runs < 3:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 2)  # returns by itself once stop is set

    asyncio.run(main())
    assert metrics.counts["early"] >= 2
