# SPDX-License-Identifier: Apache-2.0
"""The spool under pressure: full spool, full disk (a real tmpfs filled up), corrupt database file."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from support.scenario import publish_states, seqs
from testsupport.polling import wait_until
from testsupport.programs import unavailable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MiB = 1024 * 1024


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_spool_full_applies_the_policy_counts_and_stays_up(stack, policy):
    cfg = stack.base_config()
    cfg["spool"]["max_bytes"] = 1 * MiB  # the smallest the config allows
    cfg["spool"]["full_policy"] = policy
    cfg["uplink"]["batch_max_readings"] = 2000
    agent = stack.agent(cfg).start()
    pub = stack.publisher()
    stack.cloud.stop()
    wait_until(lambda: agent.metric("uplink_connected") == 0, 15, "the outage to be noticed")

    n = 0
    while agent.metric("readings_dropped_total", reason="spool_full") == 0:
        assert n < 200_000, "spool never reported full"
        publish_states(pub, n, 5000)
        n += 5000
        pub.wait_acked(n, timeout=60)
        wait_until(
            lambda n=n: agent.metric("readings_received_total", source="mqtt") >= n, 60, "every message taken"
        )
        wait_until(
            lambda: agent.metric("spool_pending_readings") == 0, 30, "every reading committed or dropped"
        )
    dropped = agent.metric("readings_dropped_total", reason="spool_full")
    # The depth gauge is refreshed about once a second: wait for it to account for every reading.
    wait_until(
        lambda: agent.metric("spool_depth_readings") + dropped == n,
        10,
        "every reading either in the spool or counted as dropped",
    )
    assert agent.alive
    assert agent.metric("spool_bytes") <= 1 * MiB
    depth = agent.metric("spool_depth_readings")
    logs = [r for r in agent.log_records() if r.get("event") == "spool_spool_full"]
    assert logs and logs[0]["level"] == "warning" and logs[0].get("policy") == policy

    stack.cloud.start()
    stack.subscriber.wait_for(lambda s: len(set(seqs(s))) >= depth, 60, "the surviving backlog")
    stack.subscriber.wait_quiet(1.0)
    delivered = sorted(set(seqs(stack.subscriber)))
    assert len(delivered) == depth
    if policy == "drop_oldest":  # what survived is the newest contiguous tail
        assert delivered == list(range(n - len(delivered), n))
    else:  # drop_newest: the oldest contiguous head
        assert delivered == list(range(len(delivered)))


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 8 MiB tmpfs the test can fill up. Mounting it needs root (CI and the test hosts run as root);
    without it the test is skipped for a developer and fails under CI."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    mnt = tmp_path / "tinyfs"
    mnt.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mnt)]
    proc = subprocess.run(cmd, check=False, capture_output=True)
    if proc.returncode != 0:
        unavailable(f"cannot mount tmpfs: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    """Write zeros until the filesystem is full (ENOSPC); unbuffered, so closing cannot fail."""
    with contextlib.suppress(OSError), open(path, "wb", buffering=0) as fh:
        while True:
            fh.write(b"\0" * 65536)


def test_disk_full_keeps_agent_up_and_recovers_without_loss(stack, tiny_fs):
    cfg = stack.base_config()
    cfg["spool"]["path"] = str(tiny_fs / "spool.db")
    cfg["spool"]["min_free_bytes"] = 0  # exercise the real ENOSPC path, not the low-disk guard
    agent = stack.agent(cfg).start()
    pub = stack.publisher()
    sub = stack.subscriber
    stack.cloud.stop()  # readings must stay in the spool
    publish_states(pub, 0, 500)
    wait_until(lambda: agent.metric("readings_accepted_total") >= 500, 20, "first readings committed")

    filler = tiny_fs / "filler"
    _fill(filler)
    publish_states(pub, 500, 3000)
    assert pub.wait_acked(3500) == 3500
    wait_until(lambda: agent.metric("spool_commit_errors_total") >= 1, 30, "commit errors to be counted")
    # A second failed commit: the writer retried after the first error instead of dying with it.
    wait_until(lambda: agent.metric("spool_commit_errors_total") >= 2, 30, "the failed commit to be retried")
    assert agent.alive
    errors = [r for r in agent.log_records() if r.get("event") == "spool_commit_failed"]
    assert errors and errors[0]["level"] == "error"
    assert any(k in errors[0].get("error", "").lower() for k in ("full", "disk", "space")), errors[0]

    filler.unlink()  # the operator frees space
    stack.cloud.start()
    sub.wait_for(lambda s: set(seqs(s)) >= set(range(3500)), 60, "every reading after recovery")
    assert agent.alive
    assert agent.metric_sum("readings_dropped_total") == 0


def test_low_disk_guard_sheds_counted_readings_and_recovers(stack, tiny_fs):
    """``min_free_bytes`` above the free space: readings are dropped by policy (``low_disk``), counted and
    logged; once space is back, readings are accepted and delivered again."""
    cfg = stack.base_config()
    cfg["spool"]["path"] = str(tiny_fs / "spool.db")
    cfg["spool"]["min_free_bytes"] = 4 * MiB  # the tmpfs has 8 MiB
    agent = stack.agent(cfg).start()
    pub = stack.publisher()
    sub = stack.subscriber
    publish_states(pub, 0, 100)
    sub.wait_for(lambda s: len(set(seqs(s))) == 100, 20, "readings with enough disk")

    filler = tiny_fs / "filler"
    filler.write_bytes(b"\0" * (5 * MiB))  # free space now ~3 MiB < min_free_bytes
    publish_states(pub, 100, 500)
    assert pub.wait_acked(600) == 600
    wait_until(lambda: agent.metric("readings_dropped_total", reason="low_disk") >= 1, 20, "low_disk drops")
    wait_until(lambda: agent.metric("readings_received_total", source="mqtt") >= 600, 20, "all received")
    assert agent.alive
    logs = [r for r in agent.log_records() if r.get("event") == "spool_low_disk"]
    assert logs and logs[0]["level"] == "warning"

    filler.unlink()
    dropped = agent.metric("readings_dropped_total", reason="low_disk")
    publish_states(pub, 600, 100)
    sub.wait_for(lambda s: set(seqs(s)) >= set(range(600, 700)), 20, "readings after space came back")
    delivered = set(seqs(sub))
    assert len(delivered & set(range(100, 600))) + dropped >= 500, "each reading delivered or counted"
    assert agent.metric("readings_dropped_total", reason="low_disk") == dropped


def test_corrupt_spool_is_quarantined_and_a_fresh_spool_used(stack):
    cfg = stack.base_config()
    spool = Path(cfg["spool"]["path"])
    spool.parent.mkdir(parents=True, exist_ok=True)
    agent = stack.agent(cfg).start()
    pub = stack.publisher()
    publish_states(pub, 0, 50)
    stack.subscriber.wait_for(lambda s: len(set(seqs(s))) == 50, 20, "first readings")
    assert agent.stop() == 0

    # corrupt the file in the middle (a torn write / bad sector), keeping the SQLite header intact
    size = spool.stat().st_size
    with open(spool, "r+b") as fh:
        fh.seek(max(100, size // 2))
        fh.write(os.urandom(min(8192, size // 2)))
    for suffix in ("-wal", "-shm"):
        Path(str(spool) + suffix).unlink(missing_ok=True)
    garbage = spool.read_bytes()

    agent.start()
    quarantined = sorted(spool.parent.glob(spool.name + ".quarantine-*"))
    assert quarantined, list(spool.parent.iterdir())
    assert any(q.read_bytes() == garbage for q in quarantined if q.is_file()), (
        "quarantined file is the original"
    )
    assert agent.metric("spool_quarantined_total") == 1
    loud = [r for r in agent.log_records() if r.get("event") == "spool_quarantined"]
    assert loud and loud[-1]["level"] in ("error", "critical")

    publish_states(pub, 50, 50)
    stack.subscriber.wait_for(
        lambda s: set(seqs(s)) >= set(range(100)), 20, "readings through the fresh spool"
    )
    ids = {d["message_id"].split(":")[0] for d in stack.subscriber.docs()}
    assert len(ids) == 2, "the fresh spool has a new spool_id"
    assert agent.alive
