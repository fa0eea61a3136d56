# SPDX-License-Identifier: Apache-2.0
"""/health and /metrics over real HTTP, the atomic health file, and sd_notify over a real socket."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.error
import urllib.request

import pytest
from ironlink_service.health import HealthServer, write_health_file
from ironlink_service.sdnotify import SdNotifier


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize(("healthy", "code"), [(True, 200), (False, 503)])
def test_health_endpoint(healthy, code):
    async def main() -> None:
        server = HealthServer("127.0.0.1", 0, lambda: (healthy, {"status": "x"}), lambda: "m 1\n")
        await server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            status, body = await asyncio.to_thread(_get, base + "/health")
            assert status == code
            assert json.loads(body) == {"status": "x"}
            assert await asyncio.to_thread(_get, base + "/metrics") == (200, "m 1\n")
            assert (await asyncio.to_thread(_get, base + "/nope"))[0] == 404
        finally:
            await server.close()

    asyncio.run(main())


def test_health_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "run" / "health.json"
    write_health_file(path, {"status": "ok", "n": 1})
    write_health_file(path, {"status": "ok", "n": 2})
    assert json.loads(path.read_text()) == {"n": 2, "status": "ok"}
    assert [p.name for p in path.parent.iterdir()] == ["health.json"]  # no temp files left


def test_sd_notify_protocol(tmp_path):
    addr = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(addr)
    server.settimeout(2)
    try:
        n = SdNotifier({"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())})
        assert n.watchdog_interval_s() == 2.0
        assert n.ready() and n.status("ok; spool 3\nsecond line") and n.watchdog() and n.stopping()
        got = [server.recv(4096).decode() for _ in range(4)]
        assert got == ["READY=1", "STATUS=ok; spool 3", "WATCHDOG=1", "STOPPING=1"]
        n.close()
    finally:
        server.close()


def test_sd_notify_is_a_noop_outside_systemd():
    n = SdNotifier({})
    assert not n.enabled
    assert n.watchdog_interval_s() is None
    assert n.ready() is False
    other_pid = SdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_interval_s() is None
