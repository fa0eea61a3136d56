# SPDX-License-Identifier: Apache-2.0
"""Supervised loops: one loop's bug restarts that loop, not the process.

Both daemons run their long-lived loops (uplink, inputs, housekeeping; the ingest's consumer, pipeline,
probe, watchdog) as ``supervise(...)`` tasks in one ``TaskGroup``. An exception is logged, counted in
``restarts_total{task}`` and the loop restarts after a :class:`~ironlink_service.backoff.Backoff` delay;
since ``supervise`` itself never raises (except on cancellation), the TaskGroup never cancels a sibling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from .backoff import Backoff

log = logging.getLogger(__name__)

MIN_RESTART_DELAY_S = 0.1
"""Floor under the restart delay: a loop that fails at once must not spin the CPU."""


class Counter(Protocol):
    def inc(self, name: str, amount: float = 1, **labels: str) -> None: ...


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; True when it was set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, timeout)):  # no extra Task per wait, unlike wait_for in 3.11
            await event.wait()
    except TimeoutError:
        return False
    return True


async def wait_any(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until any of ``events`` is set (True) or ``timeout`` passes (False)."""
    if any(e.is_set() for e in events):
        return True
    tasks = [asyncio.create_task(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def supervise(
    name: str,
    factory: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    metrics: Counter,
    *,
    backoff_initial_s: float = 1.0,
    backoff_max_s: float = 60.0,
) -> None:
    """Run ``factory()`` until ``stop``; restart it with backoff when it raises or returns early.

    A run that lasted longer than ``backoff_max_s`` was healthy: the next failure starts the backoff
    afresh instead of waiting the capped delay."""
    backoff = Backoff(initial=backoff_initial_s, cap=backoff_max_s)
    while not stop.is_set():
        started = time.monotonic()
        try:
            await factory()
            if stop.is_set():
                return
            log.warning("task exited unexpectedly; restarting", extra={"event": "task_exited", "task": name})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task failed; restarting", extra={"event": "task_failed", "task": name})
        metrics.inc("restarts_total", task=name)
        if time.monotonic() - started > backoff_max_s:
            backoff.reset()
        await wait_event(stop, max(MIN_RESTART_DELAY_S, backoff.next_delay()))
