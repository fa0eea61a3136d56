# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: input_types
short_description: Type errors of a role's list and dict variables, from its argument specification
version_added: 0.2.0
description:
  - Reads a role's C(meta/argument_specs.yml) and returns one message per variable of type C(list) or C(dict)
    whose current value has another type (and per list element that is not of the declared C(elements) type,
    C(str) or C(dict)). An empty list means every such variable is well typed.
  - For a role's preflight. Role argument validation does not cover this; it accepts a string for a list by
    splitting it on commas while the role goes on reading the string, and it does not run for
    C(include_role) with C(tasks_from).
  - Each message names the variable, the type expected, the value found and how to write it.
options:
  _terms:
    description: Path of the role's C(meta/argument_specs.yml), usually built from C(role_path).
    type: list
    elements: path
    required: true
  entry_point:
    description: The entry point whose options are checked.
    type: str
    default: main
"""

EXAMPLES = r"""
- name: Check the types of the role's list and dict variables
  ansible.builtin.assert:
    that: __errors | length == 0
    fail_msg: "{{ __errors | join('; ') }}"
    quiet: true
  vars:
    __errors: "{{ lookup('ironlink.fleet.input_types', role_path ~ '/meta/argument_specs.yml', wantlist=1) }}"
"""

RETURN = r"""
_raw:
  description: One message per badly typed variable or element.
  type: list
  elements: str
  sample:
    - "gateway_firewall_ssh_sources: expected a list, got a string ('10.89.77.0/24'); write it as a list ..."
"""

import typing as t

import yaml
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.ironlink.fleet.plugins.module_utils._inputs import spec_type_errors


class LookupModule(LookupBase):
    def run(
        self, terms: list[t.Any], variables: dict[str, t.Any] | None = None, **kwargs: t.Any
    ) -> list[str]:
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        entry_point = self.get_option("entry_point")
        errors: list[str] = []
        for term in terms:
            try:
                with open(term, encoding="utf-8") as handle:
                    specs = yaml.safe_load(handle) or {}
                options = specs["argument_specs"][entry_point].get("options") or {}
            except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
                raise AnsibleLookupError(
                    f"ironlink.fleet.input_types: cannot read entry point {entry_point!r} of {term}: {exc}"
                ) from exc
            # Only the variables defined here are templated (each in the task's context), so an unrelated
            # broken variable does not fail the check.
            values = {name: self._templar.template(variables[name]) for name in options if name in variables}
            errors.extend(spec_type_errors(options, values))
        return errors
