"""Fleet health from the status topic: each gateway's online/offline state lands in its own client's database
(measurement gateway_status), and a gateway whose agent stops shows offline, then online again."""

from __future__ import annotations

import time

import pytest
from fleet import GW_A, GW_B, INGEST_PORTS, host, metrics, rows
from testsupport.polling import wait_until

pytestmark = pytest.mark.timeout(300)


def last_status(client: str, gateway_id: str) -> dict | None:
    where = f"gateway_id = '{gateway_id}' AND time > now() - 1h"
    found = rows(f"SELECT last(online) AS online FROM gateway_status WHERE {where}", client)
    return found[0] if found else None


def online_since(client: str, gateway_id: str, since_ms: int) -> list[bool]:
    """The gateway's status points after ``since_ms``, oldest first."""
    found = rows(
        f"SELECT online FROM gateway_status WHERE gateway_id = '{gateway_id}' AND time >= {since_ms}ms",
        client,
    )
    return [r["online"] for r in found]


@pytest.mark.parametrize("gateway", [GW_A, GW_B])
def test_each_gateway_reports_online_in_its_own_database(gateway: str) -> None:
    client, _site, gateway_id = gateway.split("/")
    wait_until(
        lambda: (last_status(client, gateway_id) or {}).get("online") is True,
        60,
        f"{gateway} online",
        interval=1.0,
    )
    other = "ZAM-WELD" if client == "ACME-PACK" else "ACME-PACK"
    assert rows("SHOW TAG VALUES FROM gateway_status WITH KEY = client_id", other) == [
        {"key": "client_id", "value": other}
    ]


def test_ingest_workers_together_track_both_gateways() -> None:
    """Each worker tracks the gateways whose messages it received; together they know the whole fleet."""
    labels = {
        key.split("{", 1)[1].rstrip("}")
        for port in INGEST_PORTS
        for key in metrics("cloud", port)
        if key.startswith("ironlink_ingest_gateway_online{")
    }
    assert labels == {
        'client_id="ACME-PACK",site_id="PLANT-1",gateway_id="GW-01"',
        'client_id="ZAM-WELD",site_id="SITE-A",gateway_id="GW-01"',
    }


def test_a_stopped_agent_shows_offline_then_online_again() -> None:
    client, _site, gateway_id = GW_A.split("/")
    since = int(time.time() * 1000)
    gateway = host(GW_A)
    gateway.check_output("systemctl stop ironlink-agent")
    try:
        wait_until(
            lambda: False in online_since(client, gateway_id, since), 30, "the offline status", interval=1.0
        )
    finally:
        gateway.check_output("systemctl start ironlink-agent")
    wait_until(
        lambda: online_since(client, gateway_id, since)[-1:] == [True],
        60,
        "the agent back online",
        interval=1.0,
    )
