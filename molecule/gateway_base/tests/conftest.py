"""Shared values for the gateway_base scenario: what converge.yml set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def ansible_env() -> dict[str, str]:
    """Environment for running ansible / ansible-playbook against the Molecule inventory."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_ROLES_PATH", str(PROJECT_DIR / "roles"))
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(PROJECT_DIR / "collections"))
    env["ANSIBLE_INJECT_FACT_VARS"] = "False"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_STDOUT_CALLBACK"] = "default"
    if "MOLECULE_INVENTORY_FILE" not in env:
        pytest.skip("MOLECULE_INVENTORY_FILE not set: run through `molecule verify`")
    return env


def run_ansible(env: dict[str, str], program: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ansible / ansible-playbook from this venv against the Molecule inventory."""
    binary = str(Path(sys.executable).with_name(program))
    return subprocess.run(
        [binary, "-i", env["MOLECULE_INVENTORY_FILE"], *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
