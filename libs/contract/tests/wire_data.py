# SPDX-License-Identifier: Apache-2.0
"""Synthetic slowly varying sensor data shared by the wire tests and bench/wire_bench.py."""

from __future__ import annotations

import random

from ironlink_contract.model import Identity, Reading

IDENTITY = Identity("ACME", "PLANT-1", "GW-0001", "prod", "gw-0001")
T0 = 1_763_800_000_000


def slow_sensor_readings(n: int, machines: int = 5, seed: int = 1) -> list[Reading]:
    """``n`` readings: temperature (0.01 resolution, drifting), rpm (int), running (bool), ts every 100 ms."""
    rng = random.Random(seed)
    temps = [20.0 + 3 * m for m in range(machines)]
    rpm = [1500 + 10 * m for m in range(machines)]
    running = [True] * machines
    out: list[Reading] = []
    step = 0
    while len(out) < n:
        for m in range(machines):
            temps[m] = round(temps[m] + rng.choice((-0.01, 0.0, 0.0, 0.01)), 2)
            rpm[m] = max(0, rpm[m] + rng.choice((-3, -1, 0, 0, 1, 3)))
            if rng.random() < 0.001:
                running[m] = not running[m]
            metrics = {"temperature": temps[m], "rpm": rpm[m], "running": running[m]}
            out.append(Reading(f"PRESS-{m:02d}", T0 + step * 100, metrics))
        step += 1
    return out[:n]
