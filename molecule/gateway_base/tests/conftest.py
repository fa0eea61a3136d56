"""Shared values for the gateway_base scenario: what converge.yml set."""

from __future__ import annotations

from pathlib import Path

SCENARIO_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = SCENARIO_DIR.parent.parent

# Testinfra through podman exec: about ten times faster than the ansible backend Molecule passes by default.
TESTINFRA_HOSTS = ["podman://ironlink-gwbase-01"]

IDENTITY = {
    "schema_version": 1,
    "client_id": "ACME",
    "site_id": "ACME-PLANT-01",
    "gateway_id": "GW-0001",
    "environment": "staging",
    "hostname": "acme-plant-01-gw-0001",
}
