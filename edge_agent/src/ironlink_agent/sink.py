# SPDX-License-Identifier: Apache-2.0
"""The one sink protocol: what every input (MQTT, Modbus) hands its readings and rejects to.

The runtime's ``AgentSink`` implements it on top of the spool. ``ack`` is called once the readings (or the
dead letter) are committed to disk, so an input that acknowledges upstream (MQTT) does it only then;
``key``/``redelivered`` let the spool recognise a message the upstream broker delivers again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ironlink_contract.model import Reading, Rejected

Ack = Callable[[], None]


class Sink(Protocol):
    def accept(
        self,
        readings: list[Reading],
        ack: Ack | None = None,
        *,
        key: bytes | None = None,
        redelivered: bool = False,
    ) -> None:
        """Queue ``readings`` for the spool; ``ack`` runs after their commit."""
        ...

    def reject(self, rejected: Rejected, ack: Ack | None = None) -> None:
        """Queue a dead letter; ``ack`` runs after its commit."""
        ...
