# SPDX-License-Identifier: Apache-2.0
"""The one poll-until-deadline helper.

A negative check never sleeps a fixed time and then asserts absence: it makes the system produce a sentinel
that must come *after* the forbidden event (a legitimate message published behind the forbidden one, a log
line written after the decision), waits for that sentinel with :func:`wait_until`, and only then asserts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call ``predicate`` every ``interval`` s until it returns a truthy value, and return that value.

    Raises ``AssertionError`` naming ``what`` once ``timeout`` seconds have passed; the predicate is always
    called once more at the deadline, so a slow machine is never failed by the final sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
