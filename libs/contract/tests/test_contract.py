# SPDX-License-Identifier: Apache-2.0
"""Contract package: stdlib only, identity and naming rules, schema vs validator, migration, topics."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import jsonschema
import pytest
from ironlink_contract import model, topics
from ironlink_contract.migrate import UPGRADERS, MigrationError, detect_version, migrate
from ironlink_contract.model import Identity, Rejected
from ironlink_contract.validate import document_errors, load_schema

IDENT = Identity("ACME", "PLANT-1", "GW-0001", "prod", "gw-0001")


def test_contract_imports_only_the_standard_library():
    """Every module the contract pulls in is its own or from the standard library (no agent, ingest, PyPI)."""
    code = """
import sys
before = set(sys.modules)
import ironlink_contract, ironlink_contract.wire, ironlink_contract.topics
import ironlink_contract.migrate, ironlink_contract.validate
new = {m.split('.')[0] for m in set(sys.modules) - before}
print(sorted(new - set(sys.stdlib_module_names)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['ironlink_contract']", f"contract imports non-stdlib modules: {out.strip()}"


@pytest.mark.parametrize("value", ["A", "ACME", "GW-0001", "A1-B2", "X" * 32])
def test_valid_ids(value):
    assert model.is_valid_id(value)


@pytest.mark.parametrize("value", ["", "acme", "-A", "A-", "X" * 33, "A_B", "A\n", "ÄCME", 5, None])
def test_invalid_ids(value):
    assert not model.is_valid_id(value)


@pytest.mark.parametrize("value", ["gw-0001", "a", "a" * 63])
def test_valid_hostnames(value):
    assert model.is_valid_hostname(value)


@pytest.mark.parametrize("value", ["GW", "-gw", "gw-", "a" * 64, "gw.local", "gw\n"])
def test_invalid_hostnames(value):
    assert not model.is_valid_hostname(value)


def test_identity_errors_name_every_field():
    errors = model.identity_errors({"client_id": "acme", "environment": "production", "hostname": "GW"})
    text = "\n".join(errors)
    for field in ("client_id", "site_id", "gateway_id", "environment", "hostname"):
        assert f"identity.{field}" in text
    assert (
        model.identity_errors(
            {"client_id": "A", "site_id": "B", "gateway_id": "C", "environment": "dev", "hostname": "c"}
        )
        == []
    )


def test_topic_prefix_and_topics():
    assert IDENT.topic_prefix == "ironlink/ACME/PLANT-1/GW-0001"
    assert topics.telemetry_topic(IDENT) == "ironlink/ACME/PLANT-1/GW-0001/telemetry"
    assert topics.status_topic(IDENT).endswith("/status")
    assert topics.command_topic(IDENT).endswith("/command")


@pytest.mark.parametrize(
    ("flt", "topic", "match"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("a/+", "a/b/c", False),
        ("a/b", "a/b", True),
        ("a//c", "a//c", True),
    ],
)
def test_topic_matching(flt, topic, match):
    assert topics.topic_matches(flt, topic) is match


@pytest.mark.parametrize("flt", ["", "a/#/b", "a/b#", "a/+b", "a\x00"])
def test_invalid_topic_filters(flt):
    assert topics.topic_filter_error(flt)


def test_rejected_of_truncates_raw():
    r = Rejected.of("too_large", "x", "mqtt:t", b"x" * (model.RAW_MAX_BYTES + 10))
    assert len(r.raw) == model.RAW_MAX_BYTES


GOOD_DOC = {
    "schema_version": 1,
    "message_id": "0123abcd:42",
    "client_id": "ACME",
    "site_id": "PLANT-1",
    "gateway_id": "GW-0001",
    "environment": "prod",
    "hostname": "gw-0001",
    "machine_id": "PRESS-01",
    "ts": 1_763_800_000_000,
    "metrics": {"temperature": 21.5, "rpm": 1500, "running": True, "mode": "auto"},
    "status": "running",
    "quality": "good",
}


def _mutations():
    def drop(key):
        return lambda d: d.pop(key)

    def put(key, value):
        return lambda d: d.__setitem__(key, value)

    def metric(name, value):
        return lambda d: d["metrics"].__setitem__(name, value)

    yield "ok", lambda d: None
    yield "no status", drop("status")
    yield "no quality", drop("quality")
    for key in ("schema_version", "message_id", "client_id", "ts", "metrics", "machine_id", "hostname"):
        yield f"missing {key}", drop(key)
    yield "v2", put("schema_version", 2)
    yield "version as string", put("schema_version", "1")
    yield "extra key", put("extra", 1)
    yield "bad message id", put("message_id", "no-colon")
    yield "bad client", put("client_id", "acme")
    yield "bad env", put("environment", "production")
    yield "bad host", put("hostname", "GW")
    yield "bad machine", put("machine_id", "bad id")
    yield "ts fractional", put("ts", 1.5e12 + 0.5)
    yield "ts too old", put("ts", 1000)
    yield "ts string", put("ts", "1763800000000")
    yield "bad status", put("status", "broken")
    yield "null status", put("status", None)
    yield "bad quality", put("quality", "meh")
    yield "metrics empty", put("metrics", {})
    yield "metrics list", put("metrics", [1])
    yield "metric bad name", metric("Temp", 1)
    yield "metric null", metric("x", None)
    yield "metric object", metric("x", {"a": 1})
    yield "metric long string", metric("x", "y" * 1025)
    yield "metric max string", metric("x", "y" * 1024)
    yield "metric negative", metric("x", -5)
    yield "metric float integral", metric("x", 1e20)


@pytest.mark.parametrize(("name", "mutate"), list(_mutations()), ids=[n for n, _ in _mutations()])
def test_pure_python_validator_agrees_with_json_schema(name, mutate):
    doc = copy.deepcopy(GOOD_DOC)
    mutate(doc)
    schema_ok = jsonschema.Draft202012Validator(load_schema()).is_valid(doc)
    ours = document_errors(doc)
    assert schema_ok == (ours == []), (name, ours)


def test_pure_python_validator_is_stricter_on_python_types():
    """JSON Schema sees 1.5e12 as an integer (JSON has one number type); in Python ts must be an int."""
    assert document_errors(dict(GOOD_DOC, ts=1.5e12))
    assert document_errors(dict(GOOD_DOC, metrics={"x": 2**64}))  # int64 only, which JSON Schema cannot say


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["client_id"]["$ref"] == "#/$defs/fleet_id"
    assert schema["$defs"]["fleet_id"]["pattern"] == model.ID_PATTERN
    assert schema["properties"]["hostname"]["pattern"] == model.HOSTNAME_PATTERN
    assert schema["properties"]["environment"]["enum"] == list(model.ENVIRONMENTS)


LEGACY = {"device": "press-01", "time": "2024-05-01T12:00:00Z", "temp": 21.5, "rpm": 1500, "running": True}


def test_v0_document_migrates_to_valid_v1():
    doc = migrate(dict(LEGACY), IDENT)
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    assert doc["machine_id"] == "press-01" and doc["ts"] == 1_714_564_800_000
    assert doc["metrics"] == {"temperature": 21.5, "rpm": 1500, "running": True}
    assert doc["client_id"] == "ACME" and doc["message_id"].startswith("legacy0:")
    assert migrate(dict(LEGACY), IDENT)["message_id"] == doc["message_id"]  # re-sent -> same id
    other = migrate(dict(LEGACY, temp=21.6), IDENT)
    assert other["message_id"] != doc["message_id"]


def test_v0_naive_time_is_utc_and_status_passes_through():
    doc = migrate(dict(LEGACY, time="2024-05-01T12:00:00", status="fault"), IDENT)
    assert doc["ts"] == 1_714_564_800_000 and doc["status"] == "fault"


@pytest.mark.parametrize(
    ("doc", "identity"),
    [
        (LEGACY, None),  # v0 needs the sender's identity
        (dict(LEGACY, time="yesterday"), IDENT),
        (dict(LEGACY, time=5), IDENT),
        (dict(LEGACY, temp=float("nan")), IDENT),
        (dict(LEGACY, device="bad id"), IDENT),
        ({"foo": 1}, IDENT),
        ({"schema_version": 7}, IDENT),
        (dict(GOOD_DOC, ts="now"), IDENT),
    ],
)
def test_migration_errors(doc, identity):
    with pytest.raises(MigrationError):
        migrate(copy.deepcopy(doc), identity)


def test_v1_passes_through_and_registry_covers_every_old_version():
    assert migrate(copy.deepcopy(GOOD_DOC)) == GOOD_DOC
    assert detect_version(LEGACY) == 0
    assert sorted(UPGRADERS) == list(range(model.SCHEMA_VERSION))


def test_schema_file_is_shipped_as_package_data():
    from importlib import resources

    path = resources.files("ironlink_contract").joinpath("schema/telemetry-v1.json")
    assert json.loads(path.read_text())["title"].startswith("Ironlink telemetry")


def test_mqtt_client_id_is_unique_where_gateway_ids_repeat():
    a = model.Identity("ZAM-WELD", "SITE-A", "GW-01", "prod", "zam-weld-site-a-gw-01")
    b = model.Identity("ZAM-WELD", "SITE-B", "GW-01", "prod", "zam-weld-site-b-gw-01")
    assert a.mqtt_client_id == "ZAM-WELD/SITE-A/GW-01"
    assert a.mqtt_client_id != b.mqtt_client_id
