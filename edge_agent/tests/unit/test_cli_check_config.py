# SPDX-License-Identifier: Apache-2.0
"""``ironlink-agent check-config``: every error printed, exit 2; valid -> one line, exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ironlink_agent import cli

VALID = """\
identity: {client_id: ACME, site_id: PLANT-1, gateway_id: GW-0001, environment: prod, hostname: gw-0001}
uplink: {host: mqtt.example.net}
spool: {path: /var/lib/ironlink-agent/spool.db}
metrics: [{name: temperature, type: float}]
mqtt:
  topics: [{topic: "plant/+/t", format: json, machine_id_topic_level: 1, fields: {t: temperature}}]
"""
INVALID = """\
identity: {client_id: acme, site_id: PLANT-1, gateway_id: GW-0001, environment: prod, hostname: gw-0001}
uplink: {host: mqtt.example.net, port: 0}
spool: {path: /s.db, typo: 1}
mqtt:
  topics: [{topic: "plant/+/t", format: json, machine_id_topic_level: 1, fields: {t: temperature}}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yml"
    path.write_text(text)
    return path


def test_valid_config_prints_one_summary_line(tmp_path, capsys):
    assert cli.main(["check-config", str(write(tmp_path, VALID))]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.startswith("ok: ACME/PLANT-1/GW-0001 (prod, gw-0001)")
    assert "1 mqtt topic map(s)" in out and err == ""


def test_invalid_config_prints_every_error_and_exits_2(tmp_path, capsys):
    assert cli.main(["check-config", str(write(tmp_path, INVALID))]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "4 error(s)" in err
    for expected in (
        "identity.client_id",
        "uplink.port",
        "spool.typo: unknown key",
        "fields.t: 'temperature'",
    ):
        assert expected in err


def test_missing_file_exits_2(tmp_path, capsys):
    assert cli.main(["check-config", str(tmp_path / "nope.yml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["check-config"])
    assert info.value.code == 2


def test_python_dash_m_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ironlink_agent", "check-config", str(write(tmp_path, INVALID))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "identity.client_id" in proc.stderr


def test_subcommands_register_through_registrars():
    parser = cli.build_parser()
    args = parser.parse_args(["check-config", "x.yml"])
    assert args.handler is not None and args.config == Path("x.yml")
    assert cli.register_check_config in cli.REGISTRARS
