# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: identity_rule
short_description: Describe in words what a gateway identity field must look like
version_added: 0.2.0
description:
  - Returns the human description of an identity rule, the one M(ironlink.fleet.identity_check) prints,
    for the C(fail_msg) of an assert that uses the P(ironlink.fleet.identity#test) test.
options:
  _input:
    description: The identity field.
    type: str
    required: true
    choices: [client_id, site_id, gateway_id, environment, hostname, gateway_name]
seealso:
  - plugin: ironlink.fleet.identity
    plugin_type: test
"""

EXAMPLES = r"""
- name: Explain the gateway id rule when it is broken
  ansible.builtin.assert:
    that: my_role_gateway_id is ironlink.fleet.identity('gateway_id')
    fail_msg: "my_role_gateway_id must be {{ 'gateway_id' | ironlink.fleet.identity_rule }}"
"""

RETURN = r"""
_value:
  description: What a valid value looks like, with an example.
  type: str
  sample: 1-32 upper-case letters, digits or dashes, first and last a letter or digit (e.g. 'GW-01')
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.ironlink.fleet.plugins.module_utils._identity import KINDS, expected


def identity_rule(field: str) -> str:
    """The description of ``field``'s rule (an identity field, or ``gateway_name``)."""
    if field not in KINDS:
        raise AnsibleFilterError(
            f"ironlink.fleet.identity_rule: unknown field {field!r}, expected one of {', '.join(KINDS)}"
        )
    return expected(field)


class FilterModule:
    """Ironlink identity rule descriptions."""

    def filters(self) -> dict:
        return {"identity_rule": identity_rule}
