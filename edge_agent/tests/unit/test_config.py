# SPDX-License-Identifier: Apache-2.0
"""load_config: typed result, every error at once with field paths, secrets, identity sources."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from ironlink_agent.config import ConfigError, load_config, parse_config
from ironlink_contract.model import Identity

IDENTITY_BLOCK = """\
identity:
  client_id: ACME
  site_id: PLANT-1
  gateway_id: GW-0001
  environment: prod
  hostname: gw-0001
"""

BODY = """\
uplink:
  host: mqtt.example.net
  tls:
    ca_file: {ca}
    cert_file: {ca}
    key_file: {ca}
  username: gw-0001
  password_env: UPLINK_PW
spool:
  path: /var/lib/ironlink-agent/spool.db
metrics:
  - {{name: temperature, type: float, unit: degC, min: -50, max: 200}}
  - {{name: rpm, type: int, min: 0, max: 10000}}
  - {{name: running, type: bool}}
  - {{name: mode, type: str}}
mqtt:
  username: agent
  password: local-secret
  topics:
    - topic: plant/+/telemetry
      format: json
      machine_id_topic_level: 1
      fields: {{temp: temperature, speed: rpm, "on": running}}
      ts_field: ts
      status_field: state
    - topic: plant/press1/temp
      format: number
      machine_id: PRESS-1
      fields: {{value: temperature}}
modbus:
  - name: press-1
    machine_id: PRESS-01
    protocol: tcp
    host: 10.0.0.5
    registers:
      - {{name: temperature, table: holding, address: 0, type: float32, scale: 0.1}}
      - {{name: running, table: coil, address: 0, type: bool}}
  - name: oven
    machine_id: OVEN-1
    protocol: rtu
    serial_port: /dev/ttyUSB0
    baudrate: 19200
    parity: E
    registers:
      - {{name: rpm, table: input, address: 10, type: uint32, word_order: little}}
health:
  http_port: 0
log_level: debug
"""

ENV = {"UPLINK_PW": "cloud-secret"}


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("not really a cert")
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yml"
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path, env=ENV) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    return info.value.errors


def test_full_config_loads_typed_and_frozen(tmp_path, ca):
    cfg = load_config(write(tmp_path, IDENTITY_BLOCK + BODY.format(ca=ca)), ENV)
    assert cfg.identity == Identity("ACME", "PLANT-1", "GW-0001", "prod", "gw-0001")
    assert cfg.uplink.password == "cloud-secret" and cfg.uplink.client_id == "ACME/PLANT-1/GW-0001"
    assert cfg.uplink.port == 8883 and cfg.uplink.tls is not None and cfg.uplink.tls.ca_file == ca
    assert (
        cfg.spool.path == Path("/var/lib/ironlink-agent/spool.db") and cfg.spool.full_policy == "drop_oldest"
    )
    assert [m.name for m in cfg.metrics] == ["temperature", "rpm", "running", "mode"]
    assert cfg.metrics[0].min == -50.0 and cfg.metrics[2].min is None
    assert cfg.mqtt is not None and cfg.mqtt.password == "local-secret"
    first, second = cfg.mqtt.topics
    assert first.fields == {"temp": "temperature", "speed": "rpm", "on": "running"}
    assert first.machine_id_topic_level == 1 and first.machine_id is None and first.qos == 1
    assert second.format == "number" and second.machine_id == "PRESS-1"
    tcp, rtu = cfg.modbus
    assert tcp.port == 502 and tcp.registers[0].scale == 0.1 and tcp.registers[1].type == "bool"
    assert rtu.serial_port == "/dev/ttyUSB0" and rtu.parity == "E" and rtu.registers[0].word_order == "little"
    assert cfg.health.http_port == 0 and cfg.log_level == "DEBUG" and cfg.unknown_metrics == "reject"
    with pytest.raises(AttributeError):
        cfg.uplink.host = "elsewhere"  # type: ignore[misc]
    assert "cloud-secret" not in repr(cfg) and "local-secret" not in repr(cfg)


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            IDENTITY_BLOCK
            + """
uplink: {host: broker}
spool: {path: /tmp/spool.db}
unknown_metrics: accept
mqtt:
  topics: [{topic: "a/#", format: json, machine_id: M1, fields: {t: temperature}}]
""",
        ),
        {},
    )
    assert cfg.uplink.batch_max_readings == 2000 and cfg.uplink.order == "newest_first"
    assert cfg.uplink.tls is None and cfg.uplink.password is None
    assert cfg.spool.max_bytes == 256 * 1024 * 1024 and cfg.spool.commit_window_ms == 1000
    assert cfg.health.http_host == "127.0.0.1" and cfg.health.http_port == 9810
    assert cfg.mqtt is not None and cfg.mqtt.host == "127.0.0.1" and cfg.mqtt.port == 1883
    assert cfg.modbus == () and cfg.metrics == () and cfg.log_level == "INFO"


def test_every_error_is_reported_at_once_with_field_paths(tmp_path, ca):
    text = (
        """\
identity:
  client_id: acme
  site_id: PLANT-1
  environment: production
  hostname: GW
uplink:
  host: mqtt.example.net
  prot: 8883
  port: "8883"
  tls: {ca_file: /nonexistent/ca.pem, cert_file: CA_FILE}
  password_env: NOT_SET
  order: random
spool: {path: /x.db, full_policy: drop_all, max_bytes: -1}
metrics:
  - {name: temperature, type: float, min: 5, max: 1}
  - {name: Temp, type: double}
  - {name: running, type: bool, min: 0}
  - {name: temperature, type: float}
mqtt:
  topics:
    - {topic: "plant/#/x", format: xml, fields: {a: nope}}
    - {topic: "plant/+", format: number, machine_id: M1, machine_id_topic_level: 1, fields: {v: temperature}}
    - {topic: "plant/fixed/x", format: json, machine_id_topic_level: 1,
       fields: {a: temperature, b: temperature}}
modbus:
  - name: press-1
    machine_id: PRESS-01
    protocol: tcp
    baudrate: 9600
    registers:
      - {name: temperature, table: holding, address: 0, type: float16}
      - {name: temperature, table: coil, address: 70000, type: int16}
  - name: press-1
    machine_id: bad id
    protocol: serial
    registers: []
health: {http_port: 70000, extra: 1}
log_level: verbose
surprise: true
"""
    ).replace("CA_FILE", str(ca))
    errors = errors_of(write(tmp_path, text))
    text_errors = "\n".join(errors)
    expected = [
        "identity.client_id: 'acme' does not match",
        "identity.gateway_id: required",
        "identity.environment: 'production' is not one of dev, staging, prod",
        "identity.hostname: 'GW' does not match",
        "uplink.prot: unknown key",
        "uplink.port: '8883' is not an integer",
        "uplink.tls.ca_file: '/nonexistent/ca.pem' does not exist",
        "uplink.tls.key_file: cert_file and key_file go together",
        "uplink.password_env: environment variable 'NOT_SET' is not set",
        "uplink.order: 'random' is not one of newest_first, oldest_first",
        "spool.full_policy: 'drop_all' is not one of drop_oldest, drop_newest",
        "spool.max_bytes: -1 is outside",
        "metrics[0].max: 1.0 is below min (5.0)",
        "metrics[1].name: 'Temp' does not match",
        "metrics[1].type: 'double' is not one of float, int, bool, str",
        "metrics[2].min: bounds apply to numeric metrics, not bool",
        "metrics[3].name: duplicate metric 'temperature'",
        "mqtt.topics[0].topic: 'plant/#/x': '#' must be a whole level and the last one",
        "mqtt.topics[0].format: 'xml' is not one of json, number",
        "mqtt.topics[0].machine_id: set exactly one of machine_id and machine_id_topic_level",
        "mqtt.topics[0].fields.a: 'nope' is not in metrics:",
        "mqtt.topics[1].machine_id: set exactly one",
        "mqtt.topics[1].fields: format number maps exactly one source field named 'value'",
        "mqtt.topics[2].machine_id_topic_level: level 1 of 'plant/fixed/x' is not a '+' or '#' level",
        "mqtt.topics[2].fields.b: metric 'temperature' is already mapped",
        "modbus[0].baudrate: not valid with protocol tcp",
        "modbus[0].registers[0].type: 'float16' is not one of int16, uint16, int32, uint32, float32, float64",
        "modbus[0].registers[1].type: 'int16': coil tables hold bits, use type bool",
        "modbus[0].registers[1].address: 70000 is outside [0, 65535]",
        "modbus[0].registers: metric 'temperature' is mapped twice",
        "modbus[0].host: required",
        "modbus[1].name: duplicate device name 'press-1'",
        "modbus[1].protocol: 'serial' is not one of tcp, rtu",
        "modbus[1].registers: at least one register is required",
        "modbus[1].machine_id: 'bad id' does not match",
        "health.http_port: 70000 is outside",
        "health.extra: unknown key",
        "log_level: 'verbose' is not one of",
        "surprise: unknown key",
    ]
    missing = [e for e in expected if e not in text_errors]
    assert not missing, "missing errors:\n" + "\n".join(missing) + "\n\ngot:\n" + text_errors
    assert len(errors) == len(expected), text_errors


def test_identity_from_file(tmp_path):
    ident_file = tmp_path / "identity.json"
    ident_file.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "client_id": "ZAM",
                "site_id": "WELD-A",
                "gateway_id": "GW-7",
                "environment": "staging",
                "hostname": "gw-7",
            }
        )
    )
    text = f"identity_file: {ident_file}\nuplink: {{host: b}}\nspool: {{path: /s.db}}\nmodbus: []\nmqtt:\n"
    text += (
        "  topics: [{topic: a, format: number, machine_id: M, fields: {value: t}}]\nunknown_metrics: accept\n"
    )
    cfg = load_config(write(tmp_path, text), {})
    assert cfg.identity == Identity("ZAM", "WELD-A", "GW-7", "staging", "gw-7")
    assert cfg.uplink.client_id == "ZAM/WELD-A/GW-7"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "not valid JSON"),
        ("[]", "expected a mapping"),
        ('{"client_id": "ZAM"}', "schema_version"),
        (
            '{"schema_version": 1, "client_id": "zam", "site_id": "S", "gateway_id": "G", '
            '"environment": "prod", "hostname": "g", "extra": 1}',
            "client_id",
        ),
    ],
)
def test_bad_identity_file_is_a_config_error(tmp_path, content, message):
    ident_file = tmp_path / "identity.json"
    if content is not None:
        ident_file.write_text(content)
    text = (
        f"identity_file: {ident_file}\nuplink: {{host: b}}\nspool: {{path: /s.db}}\nunknown_metrics: accept\n"
    )
    text += "mqtt: {topics: [{topic: a, format: number, machine_id: M, fields: {value: t}}]}\n"
    errors = errors_of(write(tmp_path, text), {})
    assert any(e.startswith(f"identity_file ({ident_file})") and message in e for e in errors), errors


def test_identity_and_identity_file_are_exclusive(tmp_path, ca):
    text = IDENTITY_BLOCK + "identity_file: /etc/ironlink/identity.json\n" + BODY.format(ca=ca)
    assert any("set either identity or identity_file" in e for e in errors_of(write(tmp_path, text)))


def test_default_identity_file_is_used_when_no_identity_block(tmp_path, ca, monkeypatch):
    import ironlink_agent.config as config_module

    monkeypatch.setattr(config_module, "DEFAULT_IDENTITY_FILE", tmp_path / "missing.json")
    errors = errors_of(write(tmp_path, BODY.format(ca=ca)))
    assert any("missing.json" in e and "cannot read" in e for e in errors), errors


def test_secret_both_forms_is_an_error(tmp_path, ca):
    text = IDENTITY_BLOCK + BODY.format(ca=ca).replace(
        "  password_env: UPLINK_PW", "  password: a\n  password_env: B"
    )
    assert any(e.startswith("uplink.password: set either") for e in errors_of(write(tmp_path, text)))


def test_duplicate_yaml_keys_are_errors(tmp_path, ca):
    text = IDENTITY_BLOCK + BODY.format(ca=ca) + "log_level: info\n"
    errors = errors_of(write(tmp_path, text))
    assert any("duplicate key 'log_level'" in e for e in errors), errors


def test_unquoted_yaml_boolean_field_name_gets_a_hint(tmp_path, ca):
    text = IDENTITY_BLOCK + BODY.format(ca=ca).replace('"on": running', "on: running")
    assert any("quote it" in e for e in errors_of(write(tmp_path, text)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("key: [unclosed", "invalid YAML"),
        ("- a list\n", "(top level): expected a mapping"),
        ("", "uplink: required"),
    ],
)
def test_malformed_documents(tmp_path, text, message):
    assert any(message in e for e in errors_of(write(tmp_path, text)))


def test_no_inputs_is_an_error():
    data = {
        "identity": {
            "client_id": "A",
            "site_id": "B",
            "gateway_id": "C",
            "environment": "dev",
            "hostname": "c",
        },
        "uplink": {"host": "h"},
        "spool": {"path": "/s.db"},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, {})
    assert any("no inputs" in e for e in info.value.errors)


def test_loading_touches_nothing_on_disk(tmp_path, ca):
    path = write(
        tmp_path, IDENTITY_BLOCK + BODY.format(ca=ca).replace("/var/lib/ironlink-agent", str(tmp_path / "s"))
    )
    before = sorted(p.name for p in tmp_path.rglob("*"))
    load_config(path, ENV)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
