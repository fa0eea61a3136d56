"""/health and /metrics over real HTTP, the atomic health file, and sd_notify over a real socket."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.error
import urllib.request

import pytest
from ironlink_agent.health import HealthServer, write_health_file
from ironlink_agent.sdnotify import SdNotifier


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


def _cli(argv: list[str]) -> int:
    """Parse with only A2's registrars (cli.py registers them in the real entry point)."""
    import argparse

    from ironlink_agent.cli_run import REGISTRARS

    parser = argparse.ArgumentParser(prog="ironlink-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in REGISTRARS:
        register(sub)
    args = parser.parse_args(argv)
    return args.handler(args)


def test_status_command_reads_the_health_file(tmp_path, capsys):
    import time

    doc = {
        "status": "degraded",
        "ts": int(time.time() * 1000),
        "version": "0.1.0",
        "spool": {"depth": 7, "bytes": 700, "oldest_age_s": 3.0, "pending": 0, "dead_letters": 1},
        "uplink": {"connected": False, "host": "cloud", "last_error": "network: refused"},
        "counters": {"accepted": 7},
        "problems": [],
        "warnings": ["cloud broker not connected"],
    }
    write_health_file(tmp_path / "health.json", doc)
    assert _cli(["status", "--file", str(tmp_path / "health.json")]) == 0
    out = capsys.readouterr().out
    assert "DISCONNECTED" in out
    assert "7 readings" in out
    assert "warning:   cloud broker not connected" in out
    write_health_file(
        tmp_path / "health.json", {**doc, "status": "unhealthy", "problems": ["spool writer stuck"]}
    )
    assert _cli(["status", "--file", str(tmp_path / "health.json")]) == 1
    write_health_file(tmp_path / "health.json", {**doc, "ts": 0})  # agent gone: stale file
    assert _cli(["status", "--file", str(tmp_path / "health.json")]) == 1
    assert _cli(["status", "--url", "http://127.0.0.1:9/health"]) == 3


def test_spool_commands_read_a_live_spool(tmp_path, capsys):
    from ironlink_agent.contract.model import Reading
    from ironlink_agent.metrics import Metrics
    from ironlink_agent.spool import Spool

    spool = Spool(tmp_path / "spool.db", Metrics(), min_free_bytes=0)
    spool.open()
    try:
        spool.submit([Reading("M1", 1_763_800_000_000 + i, {"temp": 1.5}) for i in range(4)])
        assert spool.wait_idle(5)
        assert _cli(["spool", "stats", "--path", str(tmp_path / "spool.db")]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["readings"] == 4
        assert stats["spool_id"] == spool.spool_id
        assert (
            _cli(
                [
                    "spool",
                    "export",
                    "--path",
                    str(tmp_path / "spool.db"),
                    "--what",
                    "readings",
                    "--limit",
                    "2",
                ]
            )
            == 0
        )
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    finally:
        spool.close()
    assert _cli(["spool", "stats", "--path", str(tmp_path / "missing.db")]) == 1
