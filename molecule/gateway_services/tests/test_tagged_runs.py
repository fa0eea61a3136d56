# SPDX-License-Identifier: GPL-3.0-or-later
"""A narrow ``--tags`` run of converge.yml still runs the role's preflight first (issue 8).

Before, the preflights were tagged with the role name only: ``--tags gateway_firewall_configure`` wrote and
applied nftables rules without the SSH lock-out guard, and ``--tags gateway_docker_configure`` failed on the
undefined ``gateway_docker_engine`` the preflight sets.
"""

import json
from pathlib import Path

import pytest
import yaml
from svc_hosts import FRESH, PRELOADED, gw
from testsupport.playbook import ansible_playbook, output

SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
CONVERGE = SCENARIO / "converge.yml"
ROLES = ("gateway_host_services", "gateway_firewall", "gateway_docker")  # what converge.yml applies
FIREWALL_FILES = (
    "/etc/nftables.conf",
    "/etc/nftables.d/ironlink.nft",
    "/etc/systemd/system/nftables.service.d/ironlink.conf",
)


def firewall_state(host):
    """The loaded ruleset (stateless: without the counters traffic moves) and the role's files, as bytes."""
    return {
        "ruleset": host.check_output("nft --stateless list ruleset"),
        "files": {path: host.file(path).content for path in FIREWALL_FILES},
    }


def test_configure_tag_refuses_rules_that_lock_the_controller_out():
    # The preloaded gateway knows the controller's address (molecule.yml): SSH only from TEST-NET-1 would
    # shut it out, so the preflight must stop the run before the table is written or reloaded.
    host = gw(PRELOADED)
    before = firewall_state(host)
    locked_out = {"gateway_firewall_ssh_sources": ["192.0.2.0/24"]}
    result = ansible_playbook(
        CONVERGE, "--tags", "gateway_firewall_configure", "--limit", PRELOADED, "-e", json.dumps(locked_out)
    )
    assert result.returncode == 2, output(result)
    assert "which is in none of gateway_firewall_ssh_sources (192.0.2.0/24)" in output(result)
    assert "changed=0" in result.stdout
    assert firewall_state(host) == before


def role_tags(role):
    """The tags of a role's tasks/main.yml, the role's own name aside (that one runs the whole role)."""
    tasks = yaml.safe_load((PROJECT / "roles" / role / "tasks" / "main.yml").read_text())
    return {tag for task in tasks for tag in task.get("tags", [])} - {role}


# Every narrow tag of the scenario's roles, read from the roles so a new tag is covered without editing this.
NARROW_TAGS = sorted(set().union(*(role_tags(role) for role in ROLES)))


@pytest.mark.parametrize("tag", NARROW_TAGS)
def test_each_tag_alone_runs_and_changes_nothing(tag):
    # Before issue 8, gateway_docker_configure failed on gateway_docker_engine, set by the preflight.
    result = ansible_playbook(CONVERGE, "--tags", tag)
    assert result.returncode == 0, output(result)
    for name in (FRESH, PRELOADED):
        assert f"{name} : ok=" in output(result)
    # A converged host: one step alone changes nothing either.
    assert output(result).count("changed=0") == 2, output(result)
