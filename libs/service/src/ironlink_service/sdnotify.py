# SPDX-License-Identifier: Apache-2.0
"""systemd notification protocol over NOTIFY_SOCKET (stdlib only).

``Type=notify`` services tell systemd when they are ready, what they are doing and that they are alive.
Without NOTIFY_SOCKET (not under systemd, or in tests) every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SdNotifier:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        addr = environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):  # abstract namespace socket
            addr = "\0" + addr[1:]
        self._addr = addr or None
        self._sock: socket.socket | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self._watchdog_usec = int(usec) if enabled else 0

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def watchdog_interval_s(self) -> float | None:
        """Half of WATCHDOG_USEC, as systemd recommends; None when no watchdog is configured."""
        return self._watchdog_usec / 2e6 if self._watchdog_usec else None

    def notify(self, state: str) -> bool:
        if self._addr is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(state.encode(), self._addr)
        except OSError as exc:
            log.warning("sd_notify failed", extra={"event": "sdnotify_failed", "error": str(exc)})
            return False
        return True

    def ready(self) -> bool:
        return self.notify("READY=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text.splitlines()[0] if text else ''}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
