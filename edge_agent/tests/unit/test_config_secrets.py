# SPDX-License-Identifier: Apache-2.0
"""A password from the agent's config never reaches the log stream (JSON logs, ironlink_service.logs)."""

from __future__ import annotations

import io
import json
import logging

from ironlink_agent.config import parse_config
from ironlink_service.logs import MASK, register_secret, setup_logging

SECRET = "s3cr3t-Passw0rd!"


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
