"""A failing identity check leaves every host exactly as it was: files, hostname, packages, services."""

import os
import subprocess
from pathlib import Path

import pytest
from testsupport.playbook import ansible_playbook

SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
HOSTS = ("ironlink-idr-gw-a", "ironlink-idr-gw-b")
MARKER = "/run/ironlink-before-run"
# Everything on the root filesystem except the kernel's, runtime and journal trees, which change on their own.
CHANGED_FILES = (
    f"find / -xdev \\( -path /proc -o -path /sys -o -path /run -o -path /tmp"
    " -o -path /var/log/journal -o -path /var/tmp -o -path /var/lib/systemd \\) -prune"
    f" -o -newer {MARKER} -print"
)

CASES = {
    # every variable, bad value and host the operator needs to fix it
    "malformed": [
        "ironlink_site_id",
        "'site-b'",
        "ironlink_environment",
        "'production'",
        "ironlink_hostname",
        "'Mol_Site_B'",
        "ironlink-idr-gw-b",
    ],
    "duplicate": ["ironlink-idr-gw-a", "ironlink-idr-gw-b", "GW-01", "mol-site-a-gw-01"],
    "missing": ["ironlink-idr-gw-b", "ironlink_gateway_id", "ironlink_hostname"],
}


def sh(container, command):
    return subprocess.run(
        ["podman", "exec", container, "sh", "-c", command],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def snapshot(container):
    return {
        "hostname": sh(container, "hostname; cat /etc/hostname"),
        "hosts": sh(container, "cat /etc/hosts 2>/dev/null || echo absent"),
        "packages": sh(container, "dpkg-query -W -f '${Package} ${Version} ${Status}\\n'"),
        "services": sh(container, "systemctl list-unit-files --no-legend --type=service | sort"),
        "etc": sh(container, "find /etc -xdev -printf '%p %s %T@ %m %u\\n' | sort"),
    }


@pytest.fixture(scope="module", autouse=True)
def booted():
    """Boot writes files too (utmp, wtmp): snapshot only once systemd has settled."""
    for c in HOSTS:
        subprocess.run(
            ["podman", "exec", c, "systemctl", "is-system-running", "--wait"],
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_identity_fails_and_changes_nothing(case):
    for c in HOSTS:
        sh(c, f"touch {MARKER}")
    before = {c: snapshot(c) for c in HOSTS}

    # The project's ansible.cfg, as a technician runs it: these inventories are not Molecule's.
    run = ansible_playbook(
        PROJECT / "playbooks" / "site_bringup.yml",
        inventory=SCENARIO / "inventories" / f"{case}.yml",
        config=PROJECT / "ansible.cfg",
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    for needle in CASES[case]:
        assert needle in output, f"{needle!r} missing from:\n{output}"
    assert "Converge gateway base" not in output, "the base play must never start"

    for c in HOSTS:
        assert snapshot(c) == before[c], f"{c} changed"
        assert sh(c, CHANGED_FILES) == "", f"{c}: files touched by the run"
