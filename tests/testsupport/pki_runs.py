# SPDX-License-Identifier: Apache-2.0
"""Runs of the fleet_pki role on the controller against the lab inventory, with a throw-away IRONLINK_LAB_DIR.

fleet_pki runs on localhost, so the repo tests run the real role (init step, ordinary runs, CA rotation steps)
without contacting a host, and compare the PKI directory byte for byte before and after.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from testsupport.playbook import PROJECT_CONFIG, PROJECT_DIR, ansible_env, ansible_playbook, output

LAB_INVENTORY = PROJECT_DIR / "inventories" / "lab"
LAB_INIT = PROJECT_DIR / "scripts" / "lab" / "lab-init.sh"
INIT_PLAYBOOK = "playbooks/fleet_init.yml"
# An ordinary (not init) fleet_pki run, as cloud.yml's fleet_pki play does it, without the remote plays.
PKI_PLAYBOOK = """\
- name: Fleet PKI on the controller
  hosts: localhost
  gather_facts: false
  roles:
    - role: fleet_pki
"""
RECAP = re.compile(r"^localhost\s*:\s*ok=\d+\s+changed=(\d+)", re.MULTILINE)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> content): what "byte-identical" is compared on."""
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def changed(result: subprocess.CompletedProcess[str]) -> int:
    found = RECAP.findall(result.stdout)
    assert len(found) == 1, output(result)
    return int(found[0])


def lab_init(lab_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/lab/lab-init.sh (what `make lab` runs first) with the venv's ansible on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = ansible_env(PROJECT_CONFIG, {"IRONLINK_LAB_DIR": str(lab_dir), "PATH": path})
    return subprocess.run(
        [str(LAB_INIT), *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run_pki(
    lab_dir: Path | None, playbook: Path | str, *args: str, inventory: Path = LAB_INVENTORY
) -> subprocess.CompletedProcess[str]:
    extra = {} if lab_dir is None else {"IRONLINK_LAB_DIR": str(lab_dir)}
    return ansible_playbook(
        playbook, *args, inventory=inventory, config=PROJECT_CONFIG, env=extra, timeout=600
    )
