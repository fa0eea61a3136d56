# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The gateway_refs action in real ansible-playbook runs: types as Ansible passes them, warnings and failures.

The rules themselves are tested in tests/unit/plugins/module_utils/test_inputs.py.
"""

from __future__ import annotations

import json
import sys

from ansible_collections.ironlink.fleet.tests.unit.plugins.action.test_identity_check import run_playbook

PLAY = """
- name: Refs
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check
      ironlink.fleet.gateway_refs:
        gateways: [LAB-CO/SITE-A/GW-01, LAB-CO/SITE-B/GW-01]
        accounts: [ironlink-ingest]
        inputs:
          - variable: revoked
            value: "{{{{ revoked }}}}"
            absent: warn
          - variable: rotate
            value: "{{{{ rotate }}}}"
          - variable: versions
            value: "{{{{ versions }}}}"
            type: dict
      register: result
      ignore_errors: true  # test only: record failures too
    - name: Record the result
      ansible.builtin.copy:
        content: "{{{{ result | to_json }}}}"
        dest: "{{{{ out_dir }}}}/result.json"
        mode: "0644"
"""


def refs(tmp_path, **values):
    variables = {"revoked": [], "rotate": [], "versions": {}}
    # The values arrive as -e does it: a plain key=value is a string.
    extra = [
        arg
        for name, value in values.items()
        for arg in ("-e", f"{name}={value}" if isinstance(value, str) else json.dumps({name: value}))
    ]
    inventory = {
        "all": {
            "hosts": {
                "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
            },
            "vars": variables,
        }
    }
    proc = run_playbook(tmp_path, inventory, PLAY.format(), extra=extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((tmp_path / "out" / "result.json").read_text()), proc


def test_valid_inputs_pass(tmp_path):
    result, _proc = refs(
        tmp_path, rotate=["LAB-CO/SITE-A/GW-01"], versions={"ironlink-ingest": 2, "influxdb/LAB-CO/read": 3}
    )
    assert result["failed"] is False, result["msg"]
    assert result["errors"] == []
    assert result["changed"] is False


def test_errors_are_listed_with_the_inventorys_gateways(tmp_path):
    result, _proc = refs(tmp_path, rotate="LAB-CO/SITE-A/GW-01", versions={"LAB-CO/SITE-A/GW-1": 2})
    assert result["failed"] is True
    assert result["errors"][0].startswith("rotate: expected a list, got a string ('LAB-CO/SITE-A/GW-01')")
    assert result["errors"][1] == (
        "versions key 'LAB-CO/SITE-A/GW-1' is not a gateway of inventory group 'gateways' "
        "(did you mean 'LAB-CO/SITE-A/GW-01'?)"
    )
    assert result["msg"].startswith("2 bad day-2 inputs:\n  - rotate: expected a list")
    assert result["msg"].endswith("Gateways of group 'gateways': LAB-CO/SITE-A/GW-01, LAB-CO/SITE-B/GW-01")


def test_a_removed_gateway_is_a_warning_shown_by_ansible(tmp_path):
    result, proc = refs(tmp_path, revoked=["OLD-CO/SITE-Z/GW-09"])
    assert result["failed"] is False
    assert result["warnings"][0].startswith(
        "revoked[0] 'OLD-CO/SITE-Z/GW-09' is not a gateway of inventory group"
    )
    assert "[WARNING]: revoked[0] 'OLD-CO/SITE-Z/GW-09'" in proc.stdout + proc.stderr
