# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""End-to-end tests of the identity_check action plugin: real inventories, real ansible-playbook runs.

Hosts use the local connection, or an SSH address nobody answers on (TEST-NET-1) to prove the check
never connects. Each run writes every host's registered result to a JSON file that the test reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COLLECTIONS_PATH = next(p.parent for p in Path(__file__).resolve().parents if p.name == "ansible_collections")

# Runs ansible-playbook in a child interpreter that sees the same ansible as the tests (ansible-test
# injects it through PYTHONPATH, so the console script may not exist).
PLAYBOOK_CLI = "import sys; from ansible.cli.playbook import main; main(['ansible-playbook'] + sys.argv[1:])"

GATEWAY_VARS = {
    "ansible_connection": "local",
    "ansible_python_interpreter": sys.executable,
    "ironlink_client_id": "ZAM-WELD",
    "ironlink_site_id": "SITE-A",
    "ironlink_environment": "prod",
}

UNREACHABLE = {
    "ansible_connection": "ssh",
    "ansible_host": "192.0.2.1",  # TEST-NET-1: nothing answers
    "ansible_ssh_common_args": "-o ConnectTimeout=2",
}

CHECK_PLAY = """
- name: Identity
  hosts: gateways
  gather_facts: false
  tasks:
    - name: Check
      ironlink.fleet.identity_check: {args}
      register: result
      ignore_errors: true  # test only: record failures too
    - name: Record the result
      ansible.builtin.copy:
        content: "{{{{ result | to_json }}}}"
        dest: "{{{{ out_dir }}}}/{{{{ inventory_hostname }}}}.json"
        mode: "0644"
      delegate_to: localhost
      check_mode: false
"""


def run_playbook(tmp_path, inventory, playbook, limit=None, env=None, extra=()):
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
    (tmp_path / "playbook.yml").write_text(playbook)
    (tmp_path / "out").mkdir(exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("IRONLINK_", "ANSIBLE_"))}
    child_env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH),
        ANSIBLE_CONFIG=str(tmp_path / "no-such-ansible.cfg"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    child_env.update(env or {})
    command = [sys.executable, "-c", PLAYBOOK_CLI, "-i", str(tmp_path / "inventory.yml")]
    command += [str(tmp_path / "playbook.yml")]
    command += ["-e", json.dumps({"out_dir": str(tmp_path / "out")}), *extra]
    if limit:
        command += ["--limit", limit]
    return subprocess.run(
        command, env=child_env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )


def check_run(tmp_path, hosts, args="", limit=None, env=None, extra=()):
    """Run the check play over group gateways; return ({host: registered result}, process)."""
    inventory = {"gateways": {"vars": GATEWAY_VARS, "hosts": hosts}}
    proc = run_playbook(tmp_path, inventory, CHECK_PLAY.format(args=args or "{}"), limit, env, extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # failures are recorded, not fatal
    results = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")}
    return results, proc


def check(tmp_path, hosts, args="", limit=None, env=None, extra=()):
    """Run the check play over group gateways; return {host: registered result}."""
    return check_run(tmp_path, hosts, args, limit, env, extra)[0]


def gw(gateway_id, hostname, **more):
    return {"ironlink_gateway_id": gateway_id, "ironlink_hostname": hostname, **more}


def test_valid_fleet_sets_facts_and_reports_sources(tmp_path):
    results = check(tmp_path, {"gw-a": gw("GW-01", "zam-weld-site-a-gw-01"), "gw-b": gw("GW-02", "gw-b")})
    assert sorted(results) == ["gw-a", "gw-b"]
    a = results["gw-a"]
    assert a["failed"] is False
    assert a["changed"] is False
    assert a["ansible_facts"] == {
        "ironlink_identity": {
            "client_id": "ZAM-WELD",
            "site_id": "SITE-A",
            "gateway_id": "GW-01",
            "environment": "prod",
            "hostname": "zam-weld-site-a-gw-01",
        }
    }
    assert a["identity_source"] == dict.fromkeys(a["ansible_facts"]["ironlink_identity"], "inventory")
    assert results["gw-b"]["ansible_facts"]["ironlink_identity"]["gateway_id"] == "GW-02"


def test_templated_inventory_values_are_resolved_per_host(tmp_path):
    # hostvars[other] templates in the other host's context: inventory_hostname is that host's name.
    hosts = {
        "gw-a": gw("GW-01", "{{ inventory_hostname }}", ironlink_site_id="{{ site }}", site="SITE-B"),
        "gw-b": gw("GW-02", "{{ inventory_hostname }}", ironlink_site_id="{{ site }}", site="SITE-B"),
    }
    results = check(tmp_path, hosts)
    assert results["gw-a"]["failed"] is False, results["gw-a"]["msg"]
    assert results["gw-a"]["ansible_facts"]["ironlink_identity"]["hostname"] == "gw-a"
    assert results["gw-a"]["ansible_facts"]["ironlink_identity"]["site_id"] == "SITE-B"
    assert results["gw-b"]["ansible_facts"]["ironlink_identity"]["hostname"] == "gw-b"


def test_templated_duplicate_is_found(tmp_path):
    hosts = {
        "gw-a": gw("GW-01", "{{ 'gw' ~ '-x' }}"),
        "gw-b": gw("{{ 'GW-' ~ '01' }}", "gw-b"),
        "gw-c": gw("GW-03", "gw-x"),
    }
    results = check(tmp_path, hosts)
    assert results["gw-a"]["failed"] is True
    assert results["gw-a"]["errors"] == [
        "duplicate gateway identity (client_id='ZAM-WELD', site_id='SITE-A', gateway_id='GW-01'): "
        "hosts 'gw-a' and 'gw-b' both use it; give each gateway its own ironlink_gateway_id",
        "duplicate ironlink_hostname 'gw-x': hosts 'gw-a' and 'gw-c' both use it; "
        "hostnames must be unique across the fleet",
    ]
    assert len(results["gw-b"]["errors"]) == 1
    assert len(results["gw-c"]["errors"]) == 1


def test_bad_values_are_all_reported(tmp_path):
    hosts = {
        "gw-a": gw("GW-01", "gw-a"),
        "gw-bad": gw("gw-02", "", ironlink_environment="production", ironlink_site_id="{{ undefined_site }}"),
    }
    results = check(tmp_path, hosts)
    bad = results["gw-bad"]
    assert bad["failed"] is True
    assert bad["changed"] is False
    assert "ansible_facts" not in bad
    assert bad["errors"][0] == "ironlink_site_id could not be templated: 'undefined_site' is undefined"
    assert bad["errors"][1].startswith("ironlink_gateway_id = 'gw-02' is invalid: expected 1-32 upper-case")
    assert bad["errors"][2] == (
        "ironlink_environment = 'production' is invalid: expected one of 'dev', 'staging', 'prod'"
    )
    assert bad["errors"][3].startswith("ironlink_hostname = <missing>: expected an RFC 1123 label")
    assert len(bad["errors"]) == 4
    assert bad["msg"].startswith("ironlink identity check failed for host 'gw-bad' (4 problems):\n  - ")
    assert bad["identity_source"]["site_id"] == "inventory"
    # gw-a is fine; gw-bad's broken template keeps it out of gw-a's comparison, with a warning.
    assert results["gw-a"]["failed"] is False
    assert any("'gw-bad' left out of the uniqueness check" in w for w in results["gw-a"]["warnings"])


def test_hosts_outside_limit_count(tmp_path):
    hosts = {"gw-a": gw("GW-01", "gw-a"), "gw-b": gw("GW-02", "gw-b"), "gw-old": gw("GW-01", "gw-old")}
    results = check(tmp_path, hosts, limit="gw-a,gw-b")
    assert sorted(results) == ["gw-a", "gw-b"]
    assert results["gw-a"]["errors"] == [
        "duplicate gateway identity (client_id='ZAM-WELD', site_id='SITE-A', gateway_id='GW-01'): "
        "hosts 'gw-a' and 'gw-old' both use it; give each gateway its own ironlink_gateway_id"
    ]
    assert results["gw-b"]["failed"] is False


def test_env_fallback_and_precedence(tmp_path):
    env = {
        "IRONLINK_SITE_ID": "SITE-Z",  # inventory sets SITE-A: inventory wins
        "IRONLINK_GATEWAY_ID": "GW-07",  # inventory empty: env fills in
        "IRONLINK_HOSTNAME": "zam-weld-site-a-gw-07",  # inventory undefined: env fills in
    }
    hosts = {"gw-new": {"ironlink_gateway_id": ""}, "gw-a": gw("GW-01", "gw-a")}
    results = check(tmp_path, hosts, limit="gw-new", env=env)
    new = results["gw-new"]
    assert new["failed"] is False, new.get("msg")
    assert new["ansible_facts"]["ironlink_identity"] == {
        "client_id": "ZAM-WELD",
        "site_id": "SITE-A",
        "gateway_id": "GW-07",
        "environment": "prod",
        "hostname": "zam-weld-site-a-gw-07",
    }
    assert new["identity_source"] == {
        "client_id": "inventory",
        "site_id": "inventory",
        "gateway_id": "env",
        "environment": "inventory",
        "hostname": "env",
    }


def test_env_fallback_disabled(tmp_path):
    env = {"IRONLINK_GATEWAY_ID": "GW-07", "IRONLINK_HOSTNAME": "gw-new"}
    results = check(tmp_path, {"gw-new": {}}, args="{env_fallback: false}", env=env)
    errors = results["gw-new"]["errors"]
    assert [e.split(" ", 1)[0] for e in errors] == ["ironlink_gateway_id", "ironlink_hostname"]
    assert results["gw-new"]["identity_source"]["gateway_id"] == "missing"


def test_env_values_shared_by_two_hosts_are_duplicates(tmp_path):
    # The environment applies to every host lacking the variable, including hosts outside --limit.
    env = {"IRONLINK_GATEWAY_ID": "GW-07", "IRONLINK_HOSTNAME": "gw-new"}
    results = check(tmp_path, {"gw-new": {}, "gw-other": {}}, limit="gw-new", env=env)
    assert len(results["gw-new"]["errors"]) == 2
    assert all("'gw-new' and 'gw-other'" in e for e in results["gw-new"]["errors"])


def test_other_group_and_missing_group(tmp_path):
    hosts = {"gw-a": gw("GW-01", "gw-a"), "gw-b": gw("GW-01", "gw-b")}
    results = check(tmp_path, hosts, args="{group: nosuchgroup}")
    assert results["gw-a"]["errors"] == [
        "inventory group 'nosuchgroup' does not exist: uniqueness cannot be checked"
    ]


def test_never_connects_and_works_in_check_mode(tmp_path):
    hosts = {"gw-far": gw("GW-09", "gw-far", **UNREACHABLE), "gw-a": gw("GW-01", "gw-a")}
    results, proc = check_run(tmp_path, hosts, extra=("--check",))
    assert results["gw-far"]["failed"] is False, proc.stdout
    assert results["gw-far"]["ansible_facts"]["ironlink_identity"]["gateway_id"] == "GW-09"
    assert "unreachable=0" in proc.stdout


BRINGUP = """
- name: Check gateway identity before anything changes
  hosts: gateways
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: Validate identity and fleet-wide uniqueness
      ironlink.fleet.identity_check:

- name: Change the gateways
  hosts: gateways
  gather_facts: false
  tasks:
    - name: Leave a mark
      ansible.builtin.copy:
        content: "{{ ansible_facts['ironlink_identity'] | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.changed"
        mode: "0644"
      delegate_to: localhost
"""


@pytest.mark.parametrize("bad", [False, True])
def test_one_bad_host_stops_the_run_before_any_host_changes(tmp_path, bad):
    hosts = {f"gw-{i:02d}": gw(f"GW-{i:02d}", f"gw-{i:02d}") for i in range(1, 6)}
    if bad:
        hosts["gw-04"]["ironlink_hostname"] = "gw-02"
    inventory = {"gateways": {"vars": GATEWAY_VARS, "hosts": hosts}}
    proc = run_playbook(tmp_path, inventory, BRINGUP)
    marks = sorted(p.name for p in (tmp_path / "out").glob("*.changed"))
    if not bad:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert marks == [f"gw-{i:02d}.changed" for i in range(1, 6)]
        return
    assert proc.returncode != 0
    assert marks == []
    expected = "duplicate ironlink_hostname 'gw-02': hosts 'gw-02' and 'gw-04' both use it"
    assert expected in proc.stdout + proc.stderr


def test_misspelt_variable_is_named_in_the_missing_fields_error(tmp_path):
    hosts = {"gw-a": {"ironlink_gatway_id": "GW-01", "ironlink_hostname": "gw-a"}}
    results = check(tmp_path, hosts, args="{env_fallback: false}")
    assert results["gw-a"]["errors"] == [
        "ironlink_gateway_id = <missing>: expected 1-32 upper-case letters, digits or dashes, first and "
        "last a letter "
        "or digit (e.g. 'GW-01'); set it in the inventory or export IRONLINK_GATEWAY_ID on the controller; "
        "ironlink_gatway_id is set: did you mean ironlink_gateway_id?"
    ]


def test_misspelt_variable_beside_the_real_one_is_a_warning(tmp_path):
    results = check(tmp_path, {"gw-a": gw("GW-01", "gw-a", ironlink_hostnme="gw-x")})
    assert results["gw-a"]["failed"] is False
    assert any(
        "ironlink_hostnme is set but not used (did you mean ironlink_hostname?)" in w
        for w in results["gw-a"]["warnings"]
    )


def test_unquoted_number_says_quote_it(tmp_path):
    # What YAML makes of an unquoted 01: the integer 1 (an Ansible int subclass, never shown by its class
    # name).
    results = check(tmp_path, {"gw-a": gw(1, "gw-a")})
    assert results["gw-a"]["errors"][0].startswith("ironlink_gateway_id = 1 is an integer, not a string")
    assert 'quote it: ironlink_gateway_id: "..."' in results["gw-a"]["errors"][0]


OUTSIDE_PLAY = """
- name: Outside
  hosts: all:!gateways
  gather_facts: false
  tasks:
    - name: Check
      ironlink.fleet.identity_check:
        outside_group: true
      register: result
    - name: Record the result
      ansible.builtin.copy:
        content: "{{ result | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
"""


def test_host_with_identity_outside_the_group_is_warned_about(tmp_path):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "gateways": {"vars": GATEWAY_VARS, "hosts": {"gw-a": gw("GW-01", "gw-a")}},
        "site_c": {"hosts": {"gw-c": {**local, "ironlink_gatway_id": "GW-03", "ironlink_site_id": "SITE-C"}}},
        "cloud": {
            "hosts": {"cloud-01": {**local, "ironlink_environment": "prod", "ironlink_hostname": "cloud-01"}}
        },
    }
    proc = run_playbook(tmp_path, inventory, OUTSIDE_PLAY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")}
    assert sorted(results) == ["cloud-01", "gw-c"]
    assert results["gw-c"]["outside_group"] == ["ironlink_gatway_id", "ironlink_site_id"]
    assert results["gw-c"]["warnings"] == [
        "host 'gw-c' has ironlink_gatway_id, ironlink_site_id but is not in inventory group 'gateways': the "
        "gateway plays skip it and nothing is configured. Put it in group 'gateways' (e.g. in a site group "
        "under 'gateways')."
    ]
    assert results["cloud-01"]["outside_group"] == []
    assert results["cloud-01"]["skipped"] is True
    assert "warnings" not in results["cloud-01"]
