# SPDX-License-Identifier: Apache-2.0
"""``ironlink-agent status`` and ``spool`` commands: they read the health file, the health URL and a spool."""

from __future__ import annotations

import argparse
import json
import time

from ironlink_agent.cli_run import REGISTRARS
from ironlink_agent.metrics import AgentMetrics
from ironlink_agent.spool import Spool
from ironlink_contract.model import Reading
from ironlink_service.health import write_health_file


def _cli(argv: list[str]) -> int:
    """Parse with the run/status/spool registrars only (cli.py registers them in the real entry point)."""
    parser = argparse.ArgumentParser(prog="ironlink-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in REGISTRARS:
        register(sub)
    args = parser.parse_args(argv)
    return args.handler(args)


def test_status_command_reads_the_health_file(tmp_path, capsys):
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
    spool = Spool(tmp_path / "spool.db", AgentMetrics(), min_free_bytes=0)
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
