# SPDX-License-Identifier: Apache-2.0
"""Readings from both inputs reach the cloud broker (TLS, client cert, password, ACL) in contract shape."""

from __future__ import annotations

import time

import pytest
from ironlink_agent.inputs.registers import encode
from support.scenario import schema_validator, seqs, state
from support.stack import IDENTITY, TOPIC_PREFIX
from testsupport.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# (metric, table, address, type, byte order, word order, scale, offset, raw value, expected)
PLC_REGISTERS = [
    ("temperature", "holding", 0, "float32", "big", "big", 1.0, 0.0, 71.25, 71.25),
    ("energy", "holding", 2, "uint32", "big", "little", 0.001, 0.0, 123_456_789, 123_456.789),
    ("level", "holding", 4, "int16", "little", "big", 0.1, 0.0, -125, -12.5),
    ("flow", "input", 0, "float64", "little", "little", 1.0, 0.0, 3.14159265358979, 3.14159265358979),
    ("rpm", "input", 4, "uint16", "big", "big", 1.0, 0.0, 1480, 1480),
    ("count", "input", 5, "int32", "big", "big", 1.0, 0.0, -40_000, -40_000),
    ("running", "coil", 3, "bool", "big", "big", 1.0, 0.0, True, True),
    ("alarm", "discrete", 9, "bool", "big", "big", 1.0, 0.0, False, False),
]


def plc_device(sim, name="plc-7", machine_id="PLC-7", poll_interval_s=0.2, registers=PLC_REGISTERS):
    regs = []
    for metric, table, address, type_, bo, wo, scale, offset, raw, _expected in registers:
        if table in ("coil", "discrete"):
            sim.set(table, address, [raw])
        else:
            sim.set(table, address, encode(raw, type_, bo, wo))
        regs.append(
            {
                "name": metric,
                "table": table,
                "address": address,
                "type": type_,
                "byte_order": bo,
                "word_order": wo,
                "scale": scale,
                "offset": offset,
            }
        )
    return {
        "name": name,
        "machine_id": machine_id,
        "protocol": "tcp",
        "host": "127.0.0.1",
        "port": sim.port,
        "poll_interval_s": poll_interval_s,
        "timeout_s": 0.5,
        "registers": regs,
    }


def test_mqtt_and_modbus_readings_arrive_in_contract_shape(stack):
    sim = stack.modbus_sim()
    cfg = stack.base_config(modbus=[plc_device(sim)])
    agent = stack.agent(cfg).start()
    pub = stack.publisher()
    now_ms = int(time.time() * 1000)
    pub.publish(*state(1, ts=now_ms - 5000, status="running"))
    pub.publish(*state(2, ts=(now_ms - 4000) / 1000))  # epoch seconds are accepted too
    pub.publish("factory/M-200/pressure", b"4.25")
    pub.publish("factory/M-200/pressure", b" -1e-3 ")
    assert pub.wait_acked(4) == 4

    sub = stack.subscriber
    sub.wait_for(lambda s: sorted(seqs(s)) == [1, 2], 20, "both MQTT JSON readings")
    sub.wait_for(lambda s: sum(d["machine_id"] == "M-200" for d in s.docs()) >= 2, 20, "MQTT number readings")
    sub.wait_for(lambda s: sum(d["machine_id"] == "PLC-7" for d in s.docs()) >= 3, 20, "Modbus readings")

    validator = schema_validator()
    docs = sub.docs()
    assert not sub.bad_batches()
    for doc in docs:
        errors = sorted(validator.iter_errors(doc), key=str)
        assert not errors, (doc, [e.message for e in errors])
        for key, value in IDENTITY.items():
            assert doc[key] == value
    assert {b.topic for b in sub.batches()} == {f"{TOPIC_PREFIX}/telemetry"}
    ids = [d["message_id"] for d in docs]
    assert len(ids) == len(set(ids)), "message ids must be unique"
    spool_ids = {i.split(":")[0] for i in ids}
    assert len(spool_ids) == 1

    by_seq = {d["metrics"]["seq"]: d for d in docs if d["machine_id"] == "M-100"}
    assert by_seq[1]["ts"] == now_ms - 5000
    assert by_seq[1]["status"] == "running"
    assert by_seq[1]["metrics"]["temperature"] == pytest.approx(20.1)
    assert by_seq[1]["metrics"]["running"] is True
    assert isinstance(by_seq[1]["metrics"]["rpm"], int)
    assert by_seq[2]["ts"] == now_ms - 4000
    pressures = sorted(d["metrics"]["pressure"] for d in docs if d["machine_id"] == "M-200")
    assert pressures == [pytest.approx(-0.001), pytest.approx(4.25)]

    plc = [d for d in docs if d["machine_id"] == "PLC-7"]
    for metric, *_rest, expected in PLC_REGISTERS:
        got = plc[-1]["metrics"][metric]
        assert got == pytest.approx(expected, rel=1e-9), metric
    assert all(d["quality"] == "good" for d in plc)
    assert isinstance(plc[-1]["metrics"]["rpm"], int)
    assert isinstance(plc[-1]["metrics"]["count"], int)
    # a Modbus value change shows up in the next polls
    sim.set("holding", 0, encode(80.5, "float32"))
    sub.wait_for(
        lambda s: any(
            d["metrics"].get("temperature") == 80.5 for d in s.docs() if d["machine_id"] == "PLC-7"
        ),
        10,
        "the changed register value",
    )
    assert agent.metric("readings_received_total", source="mqtt") >= 4
    assert agent.metric("readings_received_total", source="modbus") >= 3
    assert agent.non_json_log_lines() == []
    assert agent.alive


def test_failing_modbus_device_stalls_neither_mqtt_nor_other_device(stack):
    good = stack.modbus_sim()
    bad = stack.modbus_sim()
    good_dev = plc_device(good, poll_interval_s=0.1)
    bad_dev = plc_device(bad, name="plc-dead", machine_id="PLC-DEAD", poll_interval_s=0.1)
    agent = stack.agent(stack.base_config(modbus=[good_dev, bad_dev])).start()
    sub = stack.subscriber
    sub.wait_for(lambda s: any(d["machine_id"] == "PLC-DEAD" for d in s.docs()), 20, "the second device")

    bad.stop()  # the device goes offline
    bad_stopped = time.time()
    pub = stack.publisher()
    for i in range(30):
        pub.publish(*state(i))
        time.sleep(0.1)
    sub.wait_for(lambda s: sorted(set(seqs(s))) == list(range(30)), 20, "every MQTT reading")

    def good_after(t0):
        return [d for d in sub.docs() if d["machine_id"] == "PLC-7" and d["ts"] >= t0 * 1000]

    # the healthy device kept its 10/s schedule while the other was down (allow for scheduling noise)
    window = time.time() - bad_stopped
    assert len(good_after(bad_stopped)) >= 0.5 * window / 0.1, (len(good_after(bad_stopped)), window)
    wait_until(
        lambda: agent.metric("modbus_poll_errors_total", device="plc-dead") >= 2, 10, "poll errors counted"
    )
    assert agent.metric("modbus_poll_errors_total", device="plc-7") == 0
    warnings = [
        r
        for r in agent.log_records()
        if r.get("event") == "modbus_connect_failed" and r.get("device") == "plc-dead"
    ]
    assert warnings and warnings[0]["level"] == "warning"

    bad.start()  # back on the same port: readings resume
    resumed = time.time()
    sub.wait_for(
        lambda s: any(d["machine_id"] == "PLC-DEAD" and d["ts"] >= resumed * 1000 for d in s.docs()),
        20,
        "the recovered device",
    )
    assert agent.alive
