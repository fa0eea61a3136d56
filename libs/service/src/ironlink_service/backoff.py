# SPDX-License-Identifier: Apache-2.0
"""Capped exponential backoff with jitter: the one policy every reconnect and retry loop uses.

Jitter keeps a fleet that lost its broker (or a cloud tier that lost its database) at the same moment from
coming back in lock step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def full_jitter(attempt: int, initial_s: float, max_s: float) -> float:
    """AWS-style "full jitter": uniform in [0, min(cap, initial * 2**attempt)]."""
    return random.uniform(0, min(max_s, initial_s * (2 ** min(attempt, 30))))  # noqa: S311 - not crypto


@dataclass
class Backoff:
    """Stateful "equal jitter": each delay is in [d/2, d], d = min(cap, initial * 2**attempt), so a retry
    never comes back sooner than half the nominal delay."""

    initial: float = 1.0
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0
