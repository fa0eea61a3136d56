# SPDX-License-Identifier: GPL-3.0-or-later
"""Guards first: in each entry playbook, every role's preflight runs before any role changes a host.

The playbooks are read as data (import_playbook followed), so adding a role to a converge play without adding
its preflight to the preflight play fails here, not on a host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES = ROOT / "roles"
# The plays on the controller (fleet PKI and credentials) change no managed host.
CONTROLLER = {"localhost"}
ENTRY_PLAYBOOKS = ["playbooks/site_bringup.yml", "playbooks/cloud.yml"]

Play = dict[str, Any]


def plays(path: Path) -> list[Play]:
    """The plays of a playbook in run order, import_playbook expanded; each carries its file as ``_file``."""
    out: list[Play] = []
    for entry in yaml.safe_load(path.read_text()):
        imported = entry.get("ansible.builtin.import_playbook") or entry.get("import_playbook")
        if imported:
            out.extend(plays((path.parent / imported).resolve()))
        else:
            out.append({**entry, "_file": path})
    return out


def hosts(play: Play) -> set[str]:
    return {h.strip() for h in str(play["hosts"]).replace(",", ":").split(":") if h.strip()}


def _role_tasks(play: Play) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    for section in ("pre_tasks", "tasks", "post_tasks"):
        tasks.extend(play.get(section) or [])
    return [
        t.get("ansible.builtin.include_role") or t.get("ansible.builtin.import_role") or {}
        for t in tasks
        if "ansible.builtin.include_role" in t or "ansible.builtin.import_role" in t
    ]


def applied_roles(play: Play) -> list[str]:
    """Roles a play converges (whole roles, or any tasks_from other than preflight)."""
    roles = [r["role"] if isinstance(r, dict) else r for r in play.get("roles") or []]
    roles += [t["name"] for t in _role_tasks(play) if t.get("tasks_from", "main") != "preflight"]
    return roles


def preflight_roles(play: Play) -> list[str]:
    return [t["name"] for t in _role_tasks(play) if t.get("tasks_from") == "preflight"]


def guard_violations(run: list[Play]) -> list[str]:
    """Every (role, group) converged on a managed host whose preflight did not run before the first change."""
    changing = [i for i, p in enumerate(run) if applied_roles(p) and not hosts(p) <= CONTROLLER]
    if not changing:
        return []
    first = changing[0]
    checked = {(role, group) for p in run[:first] for role in preflight_roles(p) for group in hosts(p)}
    problems: list[str] = []
    for play in (run[i] for i in changing):
        for role in applied_roles(play):
            if not (ROLES / role / "tasks" / "preflight.yml").is_file():
                problems.append(f"{role}: no tasks/preflight.yml")
            for group in sorted(hosts(play)):
                if (role, group) not in checked:
                    problems.append(
                        f"{role} on {group} ({play['name']}): no preflight before {run[first]['name']!r}"
                    )
    return problems


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_every_preflight_runs_before_the_first_change(playbook: str) -> None:
    run = plays(ROOT / playbook)
    assert guard_violations(run) == []
    # One refusal stops every host, as the identity check does.
    for play in run:
        if preflight_roles(play):
            assert play.get("any_errors_fatal") is True, play["name"]


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_the_preflight_play_checks_only_converged_roles(playbook: str) -> None:
    """No preflight of a role the playbook does not converge (it would check settings nobody applies)."""
    run = plays(ROOT / playbook)
    converged = {role for p in run if not hosts(p) <= CONTROLLER for role in applied_roles(p)}
    checked = {role for p in run for role in preflight_roles(p)}
    assert checked - converged == set()


def test_the_check_finds_a_role_without_its_preflight() -> None:
    """The rule above can fail: a converge role missing from the preflight play is reported."""
    run = plays(ROOT / "playbooks/site_bringup.yml")
    preflight = next(p for p in run if preflight_roles(p))
    preflight["tasks"] = [
        t
        for t in preflight["tasks"]
        if t.get("ansible.builtin.include_role", {}).get("name") != "gateway_firewall"
    ]
    assert guard_violations(run) == [
        "gateway_firewall on gateways (Converge gateway base): no preflight before 'Converge gateway base'"
    ]
