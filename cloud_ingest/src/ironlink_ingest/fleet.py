# SPDX-License-Identifier: Apache-2.0
"""Gateway status for fleet health: online/offline and last seen, bounded to ``max_gateways`` entries.

Updated from status messages (online/offline, the last will) and from every telemetry batch (a gateway that
sends data is alive). The least recently seen gateway is forgotten past ``max_gateways``, which bounds the
``gateway_*`` metric label sets to the fleet size.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

Gateway = tuple[str, str, str]  # client_id, site_id, gateway_id


@dataclass
class GatewayState:
    online: bool | None  # None: seen only through telemetry so far
    last_seen: float  # unix seconds


class Fleet:
    def __init__(self, max_gateways: int = 10_000) -> None:
        self.max_gateways = max_gateways
        self._lock = threading.Lock()
        self._gateways: OrderedDict[Gateway, GatewayState] = OrderedDict()

    def _touch(self, gw: Gateway, now: float) -> GatewayState:
        state = self._gateways.get(gw)
        if state is None:
            state = self._gateways[gw] = GatewayState(None, now)
            while len(self._gateways) > self.max_gateways:
                self._gateways.popitem(last=False)
        else:
            state.last_seen = max(state.last_seen, now)
            self._gateways.move_to_end(gw)
        return state

    def status(self, gw: Gateway, online: bool, now: float | None = None) -> None:
        with self._lock:
            self._touch(gw, time.time() if now is None else now).online = online

    def seen(self, gw: Gateway, now: float | None = None) -> None:
        with self._lock:
            state = self._touch(gw, time.time() if now is None else now)
            if state.online is None:
                state.online = True

    def snapshot(self) -> dict[Gateway, GatewayState]:
        with self._lock:
            return {gw: GatewayState(s.online, s.last_seen) for gw, s in self._gateways.items()}

    def online_count(self) -> int:
        with self._lock:
            return sum(1 for s in self._gateways.values() if s.online)
