# SPDX-License-Identifier: Apache-2.0
"""Ingest config validation: every error at once, secrets from env, check-config and dead-letters CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ironlink_ingest.cli import main
from ironlink_ingest.config import ConfigError, database_name, load_config, parse_config
from ironlink_ingest.deadletter import DeadLetterStore


def good(tmp_path: Path) -> dict:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    return {
        "broker": {
            "host": "mqtt.example.net",
            "tls": {"ca_file": str(ca)},
            "username": "ingest",
            "password_env": "BROKER_PW",
        },
        "influxdb": {"url": "http://influx:8086"},
        "clients": {
            "ACME": {"username": "acme_writer", "password": "pw-acme"},
            "BETA-CO": {"username": "beta_writer", "password_env": "BETA_PW"},
        },
        "state_dir": str(tmp_path / "state"),
    }


ENV = {"BROKER_PW": "broker-secret", "BETA_PW": "beta-secret"}


def test_good_config(tmp_path: Path) -> None:
    cfg = parse_config(good(tmp_path), ENV)
    assert cfg.broker.port == 8883 and cfg.broker.password == "broker-secret"
    assert cfg.broker.share_group == "ironlink-ingest" and cfg.broker.session_expiry_s == 86_400
    assert cfg.clients["BETA-CO"].database == "ironlink_beta_co"
    assert cfg.clients["BETA-CO"].password == "beta-secret"
    assert set(cfg.secrets()) == {"broker-secret", "pw-acme", "beta-secret"}
    assert "secret" not in repr(cfg) and "pw-acme" not in repr(cfg)


@pytest.mark.parametrize(("client", "db"), [("ACME", "ironlink_acme"), ("BETA-CO-2", "ironlink_beta_co_2")])
def test_database_name(client: str, db: str) -> None:
    assert database_name(client) == db


def test_database_named_by_the_deployment(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["clients"]["ACME"]["database"] = "plant_acme"
    assert parse_config(data, ENV).clients["ACME"].database == "plant_acme"
    data["clients"]["BETA-CO"]["database"] = "plant_acme"
    with pytest.raises(ConfigError, match="database plant_acme is also the database of client ACME"):
        parse_config(data, ENV)
    data["clients"]["BETA-CO"]["database"] = "Bad-Name"
    with pytest.raises(ConfigError, match=r"clients\.BETA-CO\.database: 'Bad-Name' does not match"):
        parse_config(data, ENV)


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    data = good(tmp_path)
    data["broker"]["port"] = 70000
    data["broker"]["tls"]["ca_file"] = "/nonexistent/ca.crt"
    data["broker"]["share_group"] = "bad group"
    data["broker"]["typo"] = 1
    data["influxdb"] = {"url": "ftp://x", "max_batch_lines": 0, "backoff_initial_s": 5, "backoff_max_s": 1}
    data["clients"]["lower"] = {"username": "x", "password": "y"}
    data["clients"]["ACME"] = {"username": "acme_writer"}
    data["log_level"] = "loud"
    with pytest.raises(ConfigError) as exc:
        parse_config(data, {})
    text = "\n".join(exc.value.errors)
    for expected in (
        "broker.port: 70000 is outside",
        "broker.tls.ca_file: '/nonexistent/ca.crt' does not exist",
        "broker.share_group",
        "broker.typo: unknown key",
        "broker.password_env: environment variable 'BROKER_PW' is not set",
        "influxdb.url: 'ftp://x' is not http(s)://host[:port]",
        "influxdb.max_batch_lines",
        "influxdb.backoff_max_s: 1.0 is below backoff_initial_s",
        "clients.lower: 'lower' is not a fleet client id",
        "clients.ACME.password: required",
        "clients.BETA-CO.password_env: environment variable 'BETA_PW' is not set",
        "log_level",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert len(exc.value.errors) >= 12


def test_required_sections() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({}, {})
    assert "broker: required" in exc.value.errors and "clients: required" in exc.value.errors


def test_broker_credentials_are_required(tmp_path: Path) -> None:
    data = good(tmp_path)
    del data["broker"]["username"], data["broker"]["password_env"]
    with pytest.raises(ConfigError) as exc:
        parse_config(data, ENV)
    assert any("no broker credentials" in e for e in exc.value.errors)


def test_client_certificate_alone_is_enough(tmp_path: Path) -> None:
    data = good(tmp_path)
    del data["broker"]["username"], data["broker"]["password_env"]
    for name in ("c.crt", "c.key"):
        (tmp_path / name).write_text("x")
    data["broker"]["tls"].update(cert_file=str(tmp_path / "c.crt"), key_file=str(tmp_path / "c.key"))
    assert parse_config(data, ENV).broker.username is None


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "ingest.yml"
    path.write_text(yaml.safe_dump(good(tmp_path)) + "log_level: info\nlog_level: debug\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, ENV)
    assert any("duplicate key 'log_level'" in e for e in exc.value.errors)


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "ingest.yml"
    path.write_text(yaml.safe_dump(good(tmp_path)))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: broker mqtt.example.net:8883 (tls)") and "ACME, BETA-CO" in out
    assert "secret" not in out
    bad = good(tmp_path)
    bad["clients"] = {}
    bad["influxdb"]["timeout_s"] = -1
    path.write_text(yaml.safe_dump(bad))
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "2 error(s)" in err and "clients: expected a non-empty mapping" in err and "influxdb.timeout_s" in err
    )


def test_check_config_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "missing.yml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_dead_letters_cli_says_when_there_are_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "ingest.yml"
    path.write_text(yaml.safe_dump(good(tmp_path)))
    store_path = tmp_path / "state" / "1" / "dead_letters.sqlite"
    store = DeadLetterStore(store_path, max_bytes=10_000, max_payload_bytes=100)
    store.close()
    assert main(["dead-letters", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == f"no dead letters in {store_path}\n"
    store = DeadLetterStore(store_path, max_bytes=10_000, max_payload_bytes=100)
    store.add("spoofed", "GW02 wrote as GW01", "ironlink/ACME/P1/GW01/telemetry", b"x")
    store.close()
    assert main(["dead-letters", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["reason"] == "spoofed" and err == ""
    # A filter that matches nothing says so too, naming the filter.
    assert main(["dead-letters", "-c", str(path), "--reason", "malformed"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == f"no dead letters with reason malformed in {store_path}\n"
