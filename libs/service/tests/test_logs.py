# SPDX-License-Identifier: Apache-2.0
"""JSON-lines logs and secret redaction."""

from __future__ import annotations

import io
import json
import logging

from ironlink_service.logs import MASK, RateLimitedLog, redact, register_secret, setup_logging


def test_redact_masks_secret_keys_recursively():
    doc = {
        "user": "gw1",
        "password": "x1",
        "nested": [{"api_key": "k"}, {"ok": 1}],
        "tls": {"key_file": "/k"},
    }
    out = redact(doc)
    assert out == {
        "user": "gw1",
        "password": MASK,
        "nested": [{"api_key": MASK}, {"ok": 1}],
        "tls": {"key_file": MASK},
    }


def test_rate_limited_log_folds_counts():
    stream = io.StringIO()
    setup_logging("info", stream)
    rl = RateLimitedLog(logging.getLogger("ironlink_service.rl"), interval_s=60)
    for _ in range(5):
        rl.log(logging.WARNING, "spool_full", "dropping", count=10)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["count"] == 10
    rl._last["spool_full"] = -1e9  # the interval elapsed: the next line reports what was folded in
    rl.log(logging.WARNING, "spool_full", "dropping", count=1)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[-1]["count"] == 41


def test_registered_secret_is_masked_in_messages_extras_and_tracebacks():
    secret = "s3cr3t-Passw0rd!"
    stream = io.StringIO()
    setup_logging("debug", stream)
    register_secret(secret)
    log = logging.getLogger("ironlink_service.test")
    log.warning("connect failed for gw1:%s", secret)
    log.info("config", extra={"event": "config", "broker": {"host": "cloud", "token": secret}})
    try:
        raise RuntimeError(f"auth with {secret} failed")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 3
    assert MASK in lines[0]["msg"]
    assert lines[1]["broker"] == {"host": "cloud", "token": MASK}
