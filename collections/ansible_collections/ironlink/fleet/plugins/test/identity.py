# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: identity
short_description: Test whether a value is a valid gateway identity field
version_added: 0.2.0
description:
  - Checks one part of a gateway identity against the Ironlink identity rules, the same rules
    M(ironlink.fleet.identity_check) applies, so that roles can validate their own variables without
    a copy of the patterns.
  - The rules are defined once, in the collection's C(plugins/module_utils/_identity.py), and documented
    in C(docs/identity.md) of the Ironlink repository. P(ironlink.fleet.identity_rule#filter) describes
    them in words for error messages.
  - Matching is exact (a trailing newline or space fails); a value that is not a string fails.
options:
  _input:
    description: The value to test.
    type: raw
    required: true
  field:
    description:
      - Which rule to apply.
      - V(client_id), V(site_id), V(gateway_id) are ids of 1-32 upper-case letters, digits or dashes,
        first and last a letter or digit.
      - V(environment) is one of V(dev), V(staging), V(prod).
      - V(hostname) is one lower-case RFC 1123 label.
      - V(gateway_name) is a gateway's name C(CLIENT/SITE/GATEWAY), its certificate CN and MQTT user name.
    type: str
    required: true
    choices: [client_id, site_id, gateway_id, environment, hostname, gateway_name]
seealso:
  - plugin: ironlink.fleet.identity_rule
    plugin_type: filter
  - module: ironlink.fleet.identity_check
"""

EXAMPLES = r"""
- name: Check the gateway id a role was given
  ansible.builtin.assert:
    that:
      - my_role_gateway_id is ironlink.fleet.identity('gateway_id')
    fail_msg: "my_role_gateway_id must be {{ 'gateway_id' | ironlink.fleet.identity_rule }}"

- name: Keep the client ids of a mapping that are valid
  ansible.builtin.debug:
    msg: "{{ clients.keys() | select('ironlink.fleet.identity', 'client_id') | list }}"

- name: Check certificate names (CLIENT/SITE/GATEWAY)
  ansible.builtin.assert:
    that: "'ZAM-WELD/SITE-A/GW-01' is ironlink.fleet.identity('gateway_name')"
"""

RETURN = r"""
_value:
  description: Whether the value satisfies the rule of O(field).
  type: bool
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.ironlink.fleet.plugins.module_utils._identity import KINDS, is_valid


def identity(value: t.Any, field: str) -> bool:
    """Whether ``value`` satisfies the rule of ``field`` (an identity field, or ``gateway_name``)."""
    if field not in KINDS:
        # A typo in a role must fail the task, not quietly make every value invalid.
        raise AnsibleFilterError(
            f"ironlink.fleet.identity: unknown field {field!r}, expected one of {', '.join(KINDS)}"
        )
    return is_valid(field, value)


class TestModule:
    """Ironlink identity tests."""

    def tests(self) -> dict[str, t.Callable[..., bool]]:
        return {"identity": identity}
