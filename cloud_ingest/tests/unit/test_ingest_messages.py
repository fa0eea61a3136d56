# SPDX-License-Identifier: Apache-2.0
"""Topic checks, spoof detection, batch -> line protocol, status points."""

from __future__ import annotations

import json

import pytest
from ironlink_contract import wire
from ironlink_contract.model import Identity, Reading
from ironlink_ingest import messages
from ironlink_ingest.dedup import Dedup
from ironlink_ingest.messages import Reject, TopicInfo, parse_topic

ACME = Identity("ACME", "PLANT1", "GW01", "prod", "gw01")
TOPIC = TopicInfo("telemetry", "ACME", "PLANT1", "GW01")


def batch(ident: Identity = ACME, seqs: range = range(1, 4), spool: str = "sp1", **reading: object) -> bytes:
    rows = []
    for seq in seqs:
        r = Reading(
            str(reading.get("machine_id", "PRESS-01")),
            1_763_800_000_000 + seq,
            dict(
                reading.get("metrics", {"temperature": 21.5, "rpm": 1500, "running": True, "mode": 'a "b"'})
            ),  # type: ignore[call-overload]
            status=reading.get("status", "running"),  # type: ignore[arg-type]
            quality=reading.get("quality"),  # type: ignore[arg-type]
        )
        rows.append((seq, wire.pack_reading(r)))
    return wire.encode_batch(ident, spool, rows)


@pytest.mark.parametrize(
    "topic",
    [
        "ironlink/ACME/PLANT1/GW01",
        "ironlink/ACME/PLANT1/GW01/command",
        "ironlink/acme/PLANT1/GW01/telemetry",
        "ironlink/ACME/PLANT1/GW01/telemetry/extra",
        "other/ACME/PLANT1/GW01/telemetry",
        "ironlink/ACME//GW01/telemetry",
        "ironlink/ACME/PLANT 1/GW01/telemetry",
    ],
)
def test_bad_topics(topic: str) -> None:
    with pytest.raises(Reject) as exc:
        parse_topic(topic)
    assert exc.value.reason == "bad_topic"


def test_good_topic() -> None:
    assert parse_topic("ironlink/BETA-CO/S9/GW-7/status") == TopicInfo("status", "BETA-CO", "S9", "GW-7")


def test_batch_becomes_lines_with_tags_and_typed_fields() -> None:
    out = messages.telemetry(TOPIC, batch(quality="good"), Dedup(None), 1)
    assert out.readings == 3 and out.duplicates == 0 and out.seqs == [1, 2, 3]
    assert out.lines[0] == (
        "telemetry,client_id=ACME,environment=prod,gateway_id=GW01,hostname=gw01,machine_id=PRESS-01,"
        'quality=good,site_id=PLANT1,status=running temperature=21.5,rpm=1500i,running=true,mode="a \\"b\\"" '
        "1763800000001"
    )


def test_absent_status_and_quality_are_omitted() -> None:
    out = messages.telemetry(TOPIC, batch(status=None), Dedup(None), 1)
    assert "status=" not in out.lines[0].split(" ")[0] and "quality=" not in out.lines[0]


@pytest.mark.parametrize(
    "claimed",
    [
        Identity("ACME", "PLANT1", "GW02", "prod", "gw01"),  # another gateway of the same client
        Identity("ACME", "PLANT2", "GW01", "prod", "gw01"),  # another site
        Identity("EVIL", "PLANT1", "GW01", "prod", "gw01"),  # another client
    ],
)
def test_identity_not_matching_the_topic_is_spoofing(claimed: Identity) -> None:
    with pytest.raises(Reject) as exc:
        messages.telemetry(TOPIC, batch(claimed), Dedup(None), 1)
    assert exc.value.reason == "spoofed"
    assert "/".join((claimed.client_id, claimed.site_id, claimed.gateway_id)) in exc.value.detail


def test_environment_and_hostname_are_not_part_of_the_check() -> None:
    """The topic carries client/site/gateway only; environment and hostname come from the batch."""
    out = messages.telemetry(TOPIC, batch(Identity("ACME", "PLANT1", "GW01", "dev", "other")), Dedup(None), 1)
    assert "environment=dev" in out.lines[0] and "hostname=other" in out.lines[0]


@pytest.mark.parametrize(
    "payload", [b"", b"ILNK", b"ILNK\x01\x00\x00\x00\x00\x00", b"\x00" * 100, b"ILNK\x02" + b"\x00" * 20]
)
def test_malformed_payloads(payload: bytes) -> None:
    with pytest.raises(Reject) as exc:
        messages.telemetry(TOPIC, payload, Dedup(None), 1)
    assert exc.value.reason == "malformed"


def test_truncated_real_batch_is_malformed() -> None:
    good = batch()
    with pytest.raises(Reject) as exc:
        messages.telemetry(TOPIC, good[:-3], Dedup(None), 1)
    assert exc.value.reason == "malformed"


def test_duplicates_are_skipped_and_counted() -> None:
    dedup = Dedup(None)
    first = messages.telemetry(TOPIC, batch(seqs=range(1, 6)), dedup, 1)
    assert len(first.lines) == 5
    # same flush, overlapping batch: the pending marks already count
    second = messages.telemetry(TOPIC, batch(seqs=range(4, 9)), dedup, 1)
    assert second.duplicates == 2 and second.seqs == [6, 7, 8]
    dedup.release(1)  # abandoned (e.g. shutdown): nothing was stored
    again = messages.telemetry(TOPIC, batch(seqs=range(1, 9)), dedup, 2)
    assert again.duplicates == 0


def test_status_online_point() -> None:
    topic = TopicInfo("status", "ACME", "PLANT1", "GW01")
    doc = {"state": "online", "version": "0.1.0", "ts": 1_763_800_000_123, "uptime_s": 12,
           "spool_depth": 7, "oldest_reading_age_s": None, "hostname": "gw01", "extra": [1]}  # fmt: skip
    st = messages.status(topic, json.dumps(doc).encode())
    assert st is not None and st.state == "online" and st.ts_ms == 1_763_800_000_123
    assert st.line == (
        "gateway_status,client_id=ACME,gateway_id=GW01,site_id=PLANT1 "
        'state="online",online=true,uptime_s=12.0,spool_depth=7i,version="0.1.0",hostname="gw01" '
        "1763800000123"
    )


def test_last_will_uses_receive_time() -> None:
    topic = TopicInfo("status", "ACME", "PLANT1", "GW01")
    st = messages.status(topic, b'{"state":"offline"}', now_ms=1_763_900_000_000)
    assert st is not None and st.ts_ms == 1_763_900_000_000 and "online=false" in st.line


def test_empty_status_is_a_retained_clear() -> None:
    assert messages.status(TopicInfo("status", "A", "B", "C"), b"") is None


@pytest.mark.parametrize(
    "payload", [b"nope", b"[]", b'{"state":"maybe"}', b"{}", b'{"state":"online"' + b" " * 20000]
)
def test_bad_status(payload: bytes) -> None:
    with pytest.raises(Reject) as exc:
        messages.status(TopicInfo("status", "A", "B", "C"), payload)
    assert exc.value.reason == "bad_status"
