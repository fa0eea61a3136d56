"""The committed inventories pass the identity check (controller only: no host is contacted)."""

import json
import subprocess
from pathlib import Path

import pytest
from testsupport.playbook import PROJECT_CONFIG, ansible_playbook

ROOT = Path(__file__).resolve().parents[1]


def playbook(inventory: str, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    """ansible-playbook on a committed inventory with the project's ansible.cfg; must pass."""
    return ansible_playbook(
        path, *args, inventory=f"inventories/{inventory}", config=PROJECT_CONFIG, check=True
    )


@pytest.mark.parametrize("inventory, gateways", [("lab", 2), ("example", 4)])
def test_inventory_identities_are_valid_and_unique(inventory, gateways):
    run = playbook(inventory, "playbooks/gateway/identity.yml")
    assert run.stdout.count("ok=1") == gateways, run.stdout


def test_example_fleet_shape():
    run = subprocess.run(
        ["ansible-inventory", "-i", "inventories/example", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    inv = json.loads(run.stdout)
    clients = [g for g in inv if g.startswith("client_")]
    sites = [g for g in inv if g.startswith("site_")]
    assert len(clients) == 2 and len(sites) == 3
    assert len(inv["_meta"]["hostvars"]) == 7  # 4 gateways, 2 cloud hosts, the controller (localhost)
    assert sorted(inv["cloud"]["children"]) == ["brokers", "ingest", "storage"]
    assert inv["brokers"]["hosts"] == ["cloud-mqtt-01"]
    assert inv["storage"]["hosts"] == inv["ingest"]["hosts"] == ["cloud-tsdb-01"]


@pytest.mark.parametrize("inventory", ["lab", "example"])
def test_cloud_playbook_targets_the_cloud_groups(inventory):
    """cloud.yml parses against each inventory and each play targets its group (nothing is contacted)."""
    run = playbook(inventory, "playbooks/cloud.yml", "--list-hosts")
    plays = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("play #")]
    targets = [p.split("(")[1].split(")")[0] for p in plays]
    assert targets == [
        "all:!gateways",  # gateway/identity.yml: warns about a gateway outside group gateways
        "gateways",
        "localhost",
        "brokers:storage:ingest",
        "brokers",
        "storage",
        "ingest",
    ], run.stdout


@pytest.mark.parametrize("inventory", ["lab", "example"])
def test_limit_localhost_targets_the_fleet_pki_play(inventory):
    """`--limit localhost` (fleet PKI and credentials only) has a host to target: the inventory names it."""
    run = playbook(inventory, "playbooks/cloud.yml", "--limit", "localhost", "--list-hosts")
    plays = {p.split(": ", 1)[1].split("\t")[0]: p for p in run.stdout.split("play #")[1:]}
    assert "hosts (1):\n      localhost" in plays["Fleet PKI and credentials on the controller"], run.stdout
    # Every play on a managed host has none: only the controller runs.
    others = [p for name, p in plays.items() if name != "Fleet PKI and credentials on the controller"]
    assert others and all("hosts (0)" in p or "localhost" in p for p in others), run.stdout
