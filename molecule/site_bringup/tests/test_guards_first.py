# SPDX-License-Identifier: GPL-3.0-or-later
"""Guards first: a lock-out refusal of the last guarded role leaves every role's files as they were.

The run carries pending changes for gateway_base (journald size) and gateway_ssh (MaxAuthTries) and a
firewall SSH source that excludes the controller. Before the preflight play, base and SSH changed the host and
only then did the firewall guard stop the run; now the guard stops it before the converge play starts.
"""

import json

import testinfra
from testsupport.playbook import ansible_playbook, output

HOSTS = ["ironlink-sb-gw-a", "ironlink-sb-gw-b"]
MARKER = "/run/ironlink-test-guards-first"
# What the run would change if it got past the guards (each differs from what converge applied).
PENDING = {
    "gateway_base_journald_system_max_use": "99M",
    "gateway_ssh_max_auth_tries": 5,
    # TEST-NET-1: not the controller's network, so the firewall's lock-out guard refuses.
    "gateway_firewall_ssh_sources": ["192.0.2.0/24"],
}


def _changed_since_marker(name: str) -> list[str]:
    """Files and directories under /etc and /opt modified after MARKER was touched."""
    out = testinfra.get_host(f"podman://{name}").check_output(f"find /etc /opt -newer {MARKER} -print")
    return out.split()


def test_firewall_lockout_refusal_changes_no_role_on_any_host():
    for name in HOSTS:
        testinfra.get_host(f"podman://{name}").check_output(f"touch {MARKER}")
    result = ansible_playbook("playbooks/site_bringup.yml", "-e", json.dumps(PENDING))
    text = output(result)
    assert result.returncode == 2, text
    assert "gateway_firewall: the controller connects from" in text
    # Stopped in the preflight play: the converge play never started, nothing changed on either host.
    assert "PLAY [Converge gateway base]" not in result.stdout
    recap = result.stdout.split("PLAY RECAP", 1)[1]
    for name in HOSTS:
        line = next(line for line in recap.splitlines() if line.startswith(name))
        assert "changed=0" in line, line
        assert _changed_since_marker(name) == [], name
