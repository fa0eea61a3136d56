"""JSON-lines logs and secret redaction: a password from the config never reaches the log stream."""

from __future__ import annotations

import io
import json
import logging

from ironlink_agent.config import parse_config
from ironlink_agent.logs import MASK, RateLimitedLog, redact, register_secret, setup_logging

SECRET = "s3cr3t-Passw0rd!"


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


def test_config_password_never_appears_in_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("UPLINK_PW", SECRET)
    config = parse_config(
        {
            "identity": {
                "client_id": "ACME",
                "site_id": "PLANT1",
                "gateway_id": "GW1",
                "environment": "dev",
                "hostname": "gw1",
            },
            "uplink": {"host": "cloud.example", "username": "gw1", "password_env": "UPLINK_PW"},
            "spool": {"path": str(tmp_path / "spool.db")},
            "metrics": [{"name": "temperature", "type": "float"}],
            "mqtt": {
                "topics": [
                    {
                        "topic": "a/+",
                        "format": "number",
                        "machine_id": "M1",
                        "fields": {"value": "temperature"},
                    }
                ]
            },
        },
        environ={"UPLINK_PW": SECRET},
    )
    assert config.uplink.password == SECRET
    stream = io.StringIO()
    setup_logging("debug", stream)
    register_secret(config.uplink.password)
    log = logging.getLogger("ironlink_agent.test")
    log.info("starting with %s", config.uplink)  # dataclass repr
    log.info("config", extra={"event": "config", "uplink": config.uplink, "config": config})
    log.warning("connect failed for %s:%s", config.uplink.username, config.uplink.password)
    try:
        raise RuntimeError(f"auth with {SECRET} failed")
    except RuntimeError:
        log.exception("boom")
    text = stream.getvalue()
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 4
    assert all({"ts", "level", "logger", "msg", "event"} <= line.keys() for line in lines)
    assert lines[1]["uplink"]["password"] == MASK
    assert lines[1]["uplink"]["host"] == "cloud.example"


def test_rate_limited_log_folds_counts():
    stream = io.StringIO()
    setup_logging("info", stream)
    rl = RateLimitedLog(logging.getLogger("ironlink_agent.rl"), interval_s=60)
    for _ in range(5):
        rl.log(logging.WARNING, "spool_full", "dropping", count=10)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["count"] == 10
    rl._last["spool_full"] = -1e9  # the interval elapsed: the next line reports what was folded in
    rl.log(logging.WARNING, "spool_full", "dropping", count=1)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[-1]["count"] == 41
