# SPDX-License-Identifier: Apache-2.0
"""Hostile input and a hostile network: fuzzed local MQTT payloads, TLS with the wrong CA, bad password,
a publish the cloud ACL denies."""

from __future__ import annotations

import copy
import json
import random
import time

import pytest
from support.scenario import publish_states, seqs
from support.stack import ACCOUNTS, IDENTITY
from testsupport.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def hostile_payloads(n: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """``n`` (topic, payload) pairs, none of which may become a reading."""
    huge = b'{"temp": 1, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"'  # 2 MiB, also invalid JSON (no brace)
    makers = [
        lambda: rng.randbytes(rng.randint(0, 300)),
        lambda: b"[" * rng.randint(1000, 200_000),
        lambda: b'{"a":' * rng.randint(1000, 50_000),
        lambda: json.dumps({"temp": "hot", "seq": rng.random()}).encode(),
        lambda: b'{"temp": NaN, "seq": 1}',
        lambda: b'{"temp": Infinity, "seq": 1}',
        lambda: b'{"temp": -Infinity}',
        lambda: json.dumps({"temp": 1e309}).replace("Infinity", "1e999").encode(),
        lambda: json.dumps({"temp": 9999.0, "seq": 1}).encode(),  # above max 500: out_of_bounds
        lambda: json.dumps({"rpm": 2**70}).encode(),
        lambda: json.dumps({"rpm": "12abc"}).encode(),
        lambda: json.dumps({"temp": [1, 2, 3]}).encode(),
        lambda: json.dumps({"temp": {"nested": {"deep": 1}}}).encode(),
        lambda: json.dumps({"unmapped": 1}).encode(),
        lambda: json.dumps({"temp": 20, "ts": -5}).encode(),
        lambda: json.dumps({"temp": 20, "ts": "yesterday"}).encode(),
        lambda: json.dumps({"temp": 20, "status": "exploded"}).encode(),
        lambda: json.dumps([{"temp": 20}] * 5 + [{"temp": "x"}]).encode(),
        lambda: json.dumps([]).encode(),
        lambda: json.dumps("just a string").encode(),
        lambda: b"\xff\xfe\x00{}",
        lambda: b"",
        lambda: b"null",
        lambda: b'{"temp": 1, "temp": 2' + b"}" * 3,
    ]
    numbers = [b"abc", b"NaN", b"inf", b"-Infinity", b"1e999", b"", b"1 2", b"0x10", b"\x00\x01", b"9" * 400]
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        r = rng.random()
        if i % 1000 == 0:
            out.append(("factory/M-1/state", huge))
        elif r < 0.15:
            out.append(("factory/M-1/pressure", rng.choice(numbers)))
        elif r < 0.2:  # a machine id the contract refuses, taken from the topic level
            bad_id = rng.choice(["-bad", "x" * 200, "sp ace", "ünï", "a/b"])
            out.append((f"factory/{bad_id}/pressure", b"1.5"))
        else:
            out.append(("factory/M-1/state", rng.choice(makers)()))
    return out


def test_ten_thousand_hostile_payloads_are_dead_lettered_without_crash_or_leak(stack):
    cfg = stack.base_config()
    cfg["spool"]["dead_letter_max_rows"] = 2000
    agent = stack.agent(cfg).start()
    pub = stack.publisher()
    publish_states(pub, 0, 200)  # warm up the whole path before measuring memory
    stack.subscriber.wait_for(lambda s: len(set(seqs(s))) == 200, 20, "warm-up readings")
    time.sleep(1.0)
    rss_before = agent.rss_kb()

    payloads = hostile_payloads(10_000, random.Random(20261122))
    topics_ok = [t for t, _ in payloads if "/" in t and t.count("/") == 2]
    for i, (topic, payload) in enumerate(payloads):
        pub.publish(topic, payload)
        if i % 500 == 499:
            pub.wait_acked(pub.sent, timeout=30)
    assert pub.wait_acked(pub.sent, timeout=60) == pub.sent
    n_hostile = len(topics_ok)

    def dead() -> float:
        return agent.metric_sum("readings_dead_lettered_total")

    wait_until(lambda: dead() >= n_hostile, 120, f"{n_hostile} dead letters (have {dead()})")
    # Sentinel: legitimate readings published after every hostile payload. The agent takes the local
    # broker's messages in order, so once these reach the cloud no hostile message is still on its way to
    # the dead-letter count; and the agent still works.
    publish_states(pub, 200, 50)
    stack.subscriber.wait_for(lambda s: len(set(seqs(s))) == 250, 20, "readings after the fuzzing")
    assert agent.alive
    rss_after = agent.rss_kb()
    hwm = agent.hwm_kb()
    print(f"\nRSS before {rss_before} kB, after {rss_after} kB, VmHWM {hwm} kB, dead letters {dead():.0f}")
    assert dead() == n_hostile, "every hostile message dead-lettered exactly once"
    assert rss_after - rss_before < 30 * 1024, "RSS must stay bounded"
    # the dead-letter table is bounded too
    assert agent.metric("dead_letters_evicted_total") >= n_hostile - 2000
    assert all(d["machine_id"] == "M-100" for d in stack.subscriber.docs())
    assert agent.non_json_log_lines() == []


def _tls_failure_then_fix(
    stack, tls: dict, password: str | None, expect_in_log: tuple[str, ...], settle_s: float = 10.0
):
    good = stack.base_config()
    bad = copy.deepcopy(good)
    bad["uplink"]["tls"].update(tls)
    agent = stack.agent(bad, password=password).start()
    pub = stack.publisher()
    publish_states(pub, 0, 300)
    wait_until(lambda: agent.metric("readings_accepted_total") >= 300, 20, "readings spooled")
    # Two more refused connection attempts with the readings in the spool, each reported within
    # ``settle_s``; then a sentinel through the cloud broker: had an attempt delivered anything, it would
    # have reached the subscriber before the sentinel.
    tried = agent.metric_sum("uplink_connect_failures_total")
    wait_until(
        lambda: agent.metric_sum("uplink_connect_failures_total") >= tried + 2, settle_s, "refused reconnects"
    )
    stack.cloud_sentinel()
    assert agent.alive
    assert seqs(stack.subscriber) == []
    assert agent.metric("spool_depth_readings") == 300, "readings kept in the spool"
    assert agent.metric("uplink_connected") == 0
    errors = [r for r in agent.log_records() if r.get("level") in ("error", "warning")]
    text = json.dumps(errors).lower()
    assert any(e in text for e in expect_in_log), f"no clear error in the agent log: {errors[-5:]}"
    assert stack.pki.client_key.read_text() not in agent.log_text()

    assert agent.stop() == 0
    agent.env["IRONLINK_TEST_UPLINK_PASSWORD"] = ACCOUNTS.gateway_password
    stack.rewrite_config(agent, good)
    agent.start()
    stack.subscriber.wait_for(
        lambda s: set(seqs(s)) == set(range(300)), 30, "the spooled readings after the fix"
    )
    return agent


def test_wrong_ca_is_a_clear_error_and_readings_wait_in_the_spool(stack):
    _tls_failure_then_fix(
        stack,
        {"ca_file": str(stack.pki.wrong_ca_cert)},
        None,
        ("certificate verify failed", "certificate_verify_failed", "self-signed", "self signed"),
    )


def test_client_cert_from_another_ca_is_refused_and_readings_wait_in_the_spool(stack):
    _tls_failure_then_fix(
        stack,
        {"cert_file": str(stack.pki.wrong_client_cert), "key_file": str(stack.pki.wrong_client_key)},
        None,
        ("unknown ca", "alert", "certificate", "tls", "ssl", "handshake"),
        settle_s=5.0,  # the TLS alert must be reported at once, not after the 10 s CONNACK timeout
    )


def test_bad_password_is_a_clear_error_and_readings_wait_in_the_spool(stack):
    agent = _tls_failure_then_fix(stack, {}, "wrong-password", ("not authori", "bad user name or password"))
    assert "wrong-password" not in agent.log_text(), "the password must never be logged"


def test_publish_outside_the_acl_is_not_lost_and_is_logged_clearly(stack):
    """The cloud ACL only lets this gateway's account publish under its own prefix. A gateway whose identity
    does not match its broker account must keep its readings and say why, not spin.

    Mosquitto 2.0.11 answers a denied MQTT 5 publish with PUBACK 135 and then closes the connection."""
    cfg = stack.base_config()
    cfg["identity"] = dict(IDENTITY, gateway_id="GW99")
    cfg["uplink"]["backoff_initial_s"] = 1.0
    cfg["uplink"]["backoff_max_s"] = 5.0
    agent = stack.agent(cfg).start()
    pub = stack.publisher()
    publish_states(pub, 0, 100)
    wait_until(lambda: agent.metric("readings_accepted_total") >= 100, 20, "readings spooled")
    time.sleep(4.0)  # the observation window of the reconnect rate checked below, not a wait for absence
    # The broker refused a publish (PUBACK 135), then a sentinel through it: a publish it had taken would
    # have reached the subscriber before the sentinel.
    wait_until(lambda: agent.metric_sum("uplink_publish_failures_total") >= 1, 20, "a refused publish")
    stack.cloud_sentinel()
    assert seqs(stack.subscriber) == []
    assert agent.alive
    assert agent.metric("spool_depth_readings") == 100, "denied batches must stay in the spool"
    problems = [r for r in agent.log_records() if r.get("level") in ("error", "warning")]
    assert any("not authori" in json.dumps(r).lower() for r in problems), (
        "the agent log never says the broker refused the publish (not authorized): "
        f"{[r.get('msg') + ' / ' + str(r.get('reason')) for r in problems[-3:]]}"
    )
    connects = agent.metric_sum("uplink_disconnects_total")
    assert connects <= 6, f"{connects:.0f} reconnects in ~5 s with backoff_initial_s=1: backoff not applied"
