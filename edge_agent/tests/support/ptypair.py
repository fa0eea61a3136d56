# SPDX-License-Identifier: Apache-2.0
"""A virtual null-modem cable: two pseudo-terminals whose traffic a thread relays both ways.

``socat`` is not installed here, so this plays its ``pty,raw <-> pty,raw`` role for RTU tests: open
``pair.a`` on one side (the agent's serial client) and ``pair.b`` on the other (the RTU simulator).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty


class PtyPair:
    def __init__(self) -> None:
        self._m1, s1 = os.openpty()
        self._m2, s2 = os.openpty()
        for fd in (self._m1, self._m2, s1, s2):
            tty.setraw(fd)
        self.a = os.ttyname(s1)
        self.b = os.ttyname(s2)
        # Keep the slave ends open so the masters do not see EOF/EIO while a side reopens its port.
        self._slaves = (s1, s2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, name="ptypair", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        peer = {self._m1: self._m2, self._m2: self._m1}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(peer), [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    os.write(peer[fd], data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._m1, self._m2, *self._slaves):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
