# SPDX-License-Identifier: Apache-2.0
"""MQTT topic maps: machine ids, JSON and number payloads, timestamps, hostile payloads."""

from __future__ import annotations

import json

import pytest
from ironlink_agent.config import MetricSpec, MqttTopicMap
from ironlink_agent.inputs.mqtt_mapping import MAX_PAYLOAD_BYTES, map_message
from ironlink_agent.normalise import Normaliser
from ironlink_contract.model import Reading, Rejected

NOW = 1_763_800_000_000
CAT = Normaliser(
    [
        MetricSpec("temperature", "float", None, -50, 200),
        MetricSpec("rpm", "int", None, 0, 10000),
        MetricSpec("running", "bool"),
    ]
)
JSON_MAP = MqttTopicMap(
    topic="plant/+/telemetry",
    format="json",
    fields={"temp": "temperature", "speed": "rpm", "on": "running"},
    machine_id_topic_level=1,
    ts_field="ts",
    status_field="state",
)
NUMBER_MAP = MqttTopicMap(
    topic="plant/press1/temp", format="number", fields={"value": "temperature"}, machine_id="PRESS-1"
)
TOPIC = "plant/PRESS-7/telemetry"


def run(payload, topic=TOPIC, topic_map=JSON_MAP, catalogue=CAT):
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    return map_message(topic_map, topic, payload, catalogue=catalogue, received_ms=NOW)


def test_json_object_becomes_one_reading():
    result = run(
        {"temp": 21.5, "speed": 1500, "on": True, "ts": 1_763_700_000_000, "state": "Running", "x": 1}
    )
    assert result == [
        Reading("PRESS-7", 1_763_700_000_000, {"temperature": 21.5, "rpm": 1500, "running": True}, "running")
    ]


def test_missing_fields_are_skipped_and_ts_defaults_to_receive_time():
    assert run({"temp": 20}) == [Reading("PRESS-7", NOW, {"temperature": 20.0})]


def test_json_array_becomes_many_readings():
    result = run([{"temp": 1, "ts": 1_763_700_000}, {"temp": 2, "ts": 1_763_700_001.5}])
    assert isinstance(result, list)
    assert [(r.ts, r.metrics["temperature"]) for r in result] == [
        (1_763_700_000_000, 1.0),
        (1_763_700_001_500, 2.0),
    ]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1_763_700_000_123, 1_763_700_000_123),
        (1_763_700_000, 1_763_700_000_000),
        (1_763_700_000.25, 1_763_700_000_250),
        ("1763700000", 1_763_700_000_000),
        ("2025-11-21T04:40:00Z", 1_763_700_000_000),
        ("2025-11-21T05:40:00.5+01:00", 1_763_700_000_500),
    ],
)
def test_timestamp_forms(ts, expected):
    result = run({"temp": 1, "ts": ts})
    assert isinstance(result, list) and result[0].ts == expected


@pytest.mark.parametrize("ts", ["2025-11-21T04:40:00", "yesterday", True, None, [1], 1e300, "x" * 100, 5])
def test_bad_timestamps_are_rejected(ts):
    result = run({"temp": 1, "ts": ts})
    assert isinstance(result, Rejected) and result.reason == "bad_timestamp", result


def test_machine_id_from_config_and_number_payloads():
    assert run(b" 21.5\n", "plant/press1/temp", NUMBER_MAP) == [
        Reading("PRESS-1", NOW, {"temperature": 21.5})
    ]
    assert run(b"-3", "plant/press1/temp", NUMBER_MAP) == [Reading("PRESS-1", NOW, {"temperature": -3.0})]
    for bad in (b"abc", b"", b"nan", b"1e999", b"21.5 C", b"1" * 100, b"\xff"):
        result = run(bad, "plant/press1/temp", NUMBER_MAP)
        assert isinstance(result, Rejected), bad
        assert result.reason in ("bad_payload", "non_finite"), (bad, result)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "bad_encoding"),
        (b"{not json", "bad_json"),
        (b'{"temp": NaN}', "bad_json"),
        (b'{"temp": Infinity}', "bad_json"),
        (b"[" * 100_000 + b"]" * 100_000, "bad_json"),
        (b"[" * 50_000, "bad_json"),
        (b"5", "bad_payload"),
        (b'"a string"', "bad_payload"),
        (b"null", "bad_payload"),
        (b"[]", "bad_payload"),
        (b"[1, 2]", "bad_payload"),
        (b'{"temp": 1' + b"1" * 5000 + b"}", "bad_json"),
        (b'{"x": 1}', "no_metrics"),
        (b'{"temp": {"nested": 1}}', "bad_type"),
        (b'{"temp": 1e400}', "non_finite"),
        (b'{"temp": 900}', "out_of_bounds"),
        (b'{"temp": 1, "state": "exploded"}', "bad_status"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "too_large"),
        (json.dumps([{"temp": 1}] * 1001).encode(), "too_large"),
        (json.dumps([{"temp": 1}, {"temp": 999}]).encode(), "out_of_bounds"),
    ],
)
def test_hostile_payloads_become_rejected(payload, reason):
    result = run(payload)
    assert isinstance(result, Rejected), result
    assert result.reason == reason, result
    assert result.source == f"mqtt:{TOPIC}" and result.raw == payload[: 64 * 1024]


def test_array_rejection_names_the_element():
    result = run([{"temp": 1}, {"temp": 999}])
    assert isinstance(result, Rejected) and result.detail.startswith("[1]")


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("plant/bad id/telemetry", "bad_machine_id"),
        ("plant/x/other", "no_mapping"),
        ("plant/x", "no_mapping"),
    ],
)
def test_topic_problems(topic, reason):
    result = run({"temp": 1}, topic=topic)
    assert isinstance(result, Rejected) and result.reason == reason


def test_machine_id_under_hash_wildcard():
    tm = MqttTopicMap(topic="site/#", format="json", fields={"temp": "temperature"}, machine_id_topic_level=2)
    assert run({"temp": 1}, "site/hall/OVEN-3", tm)[0].machine_id == "OVEN-3"  # type: ignore[index]
    result = run({"temp": 1}, "site/hall", tm)
    assert isinstance(result, Rejected) and result.reason == "bad_machine_id"


def test_without_catalogue_any_canonical_metric_is_accepted():
    tm = MqttTopicMap(topic="a", format="json", fields={"p": "pressure"}, machine_id="M1")
    assert run({"p": 2.5}, "a", tm, catalogue=None) == [Reading("M1", NOW, {"pressure": 2.5})]


def test_receive_time_defaults_to_the_clock():
    result = map_message(NUMBER_MAP, "plant/press1/temp", b"1")
    assert isinstance(result, list) and result[0].ts > NOW - 10**12
