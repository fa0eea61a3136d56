# SPDX-License-Identifier: Apache-2.0
"""Cloud outages: store-and-forward, delivery order after recovery, and kill -9 of the agent mid-outage."""

from __future__ import annotations

import collections
import time

import pytest
from support.scenario import publish_states, seqs
from testsupport.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _batch_seqs(batch) -> list[int]:
    return [d["metrics"]["seq"] for d in batch.docs if "seq" in d["metrics"]]


def test_outage_then_newest_first_then_backfill_oldest_first(stack):
    cfg = stack.base_config()
    cfg["uplink"]["batch_max_readings"] = 500
    agent = stack.agent(cfg).start()
    pub = stack.publisher()
    sub = stack.subscriber

    publish_states(pub, 0, 100)
    sub.wait_for(lambda s: len(set(seqs(s))) == 100, 20, "pre-outage readings")
    sub.wait_quiet(0.5)

    stack.cloud.stop()
    wait_until(lambda: agent.metric("uplink_connected") == 0, 15, "the agent to notice the outage")
    n = 3000
    publish_states(pub, 100, n)
    assert pub.wait_acked(n + 100) == n + 100
    wait_until(lambda: agent.metric("spool_depth_readings") >= n, 30, "the backlog to be spooled")
    assert len(set(seqs(sub))) == 100  # nothing got through meanwhile
    before = len(sub.batches())

    stack.cloud.start()
    sub.wait_for(lambda s: len(set(seqs(s))) == n + 100, 60, "the whole backlog")
    sub.wait_quiet(0.5)

    after = [b for b in sub.batches()[before:] if _batch_seqs(b)]
    first = _batch_seqs(after[0])
    newest = list(range(100 + n - len(first), 100 + n))
    assert sorted(first) == newest, f"first batch after recovery is not the newest: {first[:3]}..{first[-3:]}"
    rest = [s for b in after[1:] for s in _batch_seqs(b) if s not in set(first)]
    assert rest == sorted(rest), "the backlog must drain oldest-first"
    assert sorted(set(rest) | set(first)) == list(range(100, 100 + n))
    counts = collections.Counter(seqs(sub))
    assert max(counts.values()) == 1, "no duplicates without a crash"
    wait_until(lambda: agent.metric("spool_depth_readings") == 0, 15, "an empty spool")
    assert agent.metric("uplink_connected") == 1


def test_kill9_during_outage_loses_nothing_that_was_acked(stack):
    cfg = stack.base_config()
    cfg["uplink"]["batch_max_readings"] = 500
    cfg["spool"]["commit_window_ms"] = 200
    agent = stack.agent(cfg).start()
    pub = stack.publisher()
    sub = stack.subscriber

    publish_states(pub, 0, 200)
    sub.wait_for(lambda s: len(set(seqs(s))) == 200, 20, "pre-outage readings")
    stack.cloud.stop()

    # publish while the agent is committing, and kill -9 it in the middle of that stream
    total = 6000
    publish_states(pub, 200, 2500)
    wait_until(lambda: agent.metric("readings_accepted_total") >= 1500, 20, "some readings accepted")
    publish_states(pub, 2700, 500)
    agent.kill9()
    killed_at = time.time()
    publish_states(pub, 3200, total - 3200)  # the local broker queues these for the agent's session
    assert pub.wait_acked(total) == total, "local broker PUBACKs"

    agent.start()
    wait_until(lambda: agent.metric("spool_depth_readings") >= 1, 20, "the restarted agent to see its spool")
    stack.cloud.start()
    sub.wait_for(lambda s: set(seqs(s)) >= set(range(total)), 90, "every acknowledged reading")
    sub.wait_quiet(1.0)

    delivered = seqs(sub)
    ids = [d["message_id"] for d in sub.docs() if d["machine_id"] == "M-100"]
    lost = set(range(total)) - set(delivered)
    assert not lost, f"{len(lost)} readings lost"
    # exact accounting: unique message ids == readings acknowledged to the publisher, unless the kill fell
    # between a spool commit and the local PUBACK (the broker then redelivers -> same reading, new id)
    same_id_dupes = len(ids) - len(set(ids))
    by_seq = collections.defaultdict(set)
    for d in sub.docs():
        if d["machine_id"] == "M-100":
            by_seq[d["metrics"]["seq"]].add(d["message_id"])
    new_id_dupes = sum(len(v) - 1 for v in by_seq.values())
    print(
        f"\nkill -9 at {killed_at:.3f}: acked={pub.ack_count} unique_ids={len(set(ids))} "
        f"same-id duplicates={same_id_dupes} duplicates-with-new-id={new_id_dupes}"
    )
    assert same_id_dupes <= cfg["uplink"].get("max_inflight", 8) * cfg["uplink"]["batch_max_readings"]
    # DESIGN.md documents only same-id duplicates; a new-id duplicate needs the kill to hit the window
    # between commit and the local ack, which the agent keeps short (ack right after commit).
    assert new_id_dupes <= 2000, "redelivered duplicates bounded by the local receive window"
    assert len(set(ids)) - new_id_dupes == pub.ack_count
    assert agent.alive
