#!/usr/bin/python
# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This file holds the documentation only: the work is done by the action plugin
# plugins/action/gateway_refs.py, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: gateway_refs
short_description: Check day-2 inputs that name gateways against the identity rules and the inventory
version_added: 0.2.0
description:
  - Checks variables such as C(fleet_pki_revoked_gateways), C(fleet_pki_rotate_gateways) and
    C(fleet_pki_password_versions) before a role acts on them, so that a typo is refused instead of doing
    nothing.
  - Each input must have its type (a list, or a mapping); a string given for a list (C(-e var=value)) is
    refused with the variable's name and how to pass a list.
  - Each entry must be a gateway name C(CLIENT/SITE/GATEWAY) (the rules of C(docs/identity.md), the ones of
    P(ironlink.fleet.identity#test)) and name a gateway of the inventory; the message names the bad entry and,
    when one is close, suggests the gateway meant.
  - A well-formed name that is not in the inventory is a warning instead of an error where
    O(inputs[].absent=warn) (revoking a gateway already removed from the inventory), as long as a certificate
    was issued to it (O(certificate_dirs)).
  - Mapping inputs (password versions) may also name one of O(accounts) or a client's InfluxDB account
    C(influxdb/CLIENT/write) or C(influxdb/CLIENT/read) (clients of O(gateways)); their values must be
    integers >= 1.
  - Runs on the controller only and never connects to the host.
options:
  gateways:
    description: Names (C(CLIENT/SITE/GATEWAY)) of the gateways in the inventory.
    type: list
    elements: str
    required: true
  accounts:
    description: Further account names a mapping input may use as keys (MQTT service accounts).
    type: list
    elements: str
    default: []
  certificate_dirs:
    description:
      - Controller directories of the gateway certificates issued so far, current and revoked, named
        C(CLIENT.SITE.GATEWAY.crt) or C(CLIENT.SITE.GATEWAY.SERIAL.crt) (the C(fleet_pki) role's C(gateways/)
        and C(revoked/)). A missing directory holds none.
      - When given, a name of an O(inputs[].absent=warn) input that is neither in O(gateways) nor held a
        certificate is an error (nothing to revoke, most likely a typo); when omitted, it is a warning.
    type: list
    elements: path
  group:
    description: Name of the inventory group of O(gateways), for the messages.
    type: str
    default: gateways
  inputs:
    description: The inputs to check.
    type: list
    elements: dict
    required: true
    suboptions:
      variable:
        description: The variable's name, for the messages.
        type: str
        required: true
      value:
        description: The variable's value.
        type: raw
        required: true
      type:
        description: The type the value must have.
        type: str
        choices: [list, dict]
        default: list
      absent:
        description: What a well-formed gateway name that is not in O(gateways) is.
        type: str
        choices: [error, warn]
        default: error
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: The check only reads the values it is given, so it runs unchanged in check mode.
  connection:
    support: none
    details: Never connects to the host.
  delegation:
    support: none
  diff_mode:
    support: none
  idempotent:
    description: Gives the same result for the same inputs and changes nothing.
    support: full
  platform:
    platforms: all
seealso:
  - plugin: ironlink.fleet.identity
    plugin_type: test
author:
  - Ironlink team (@ironlink)
"""

EXAMPLES = r"""
- name: Check the revocation, rotation and password-version inputs
  ironlink.fleet.gateway_refs:
    gateways: [ZAM-WELD/SITE-A/GW-01, ZAM-WELD/SITE-A/GW-02]
    accounts: [ironlink-ingest]
    inputs:
      - variable: fleet_pki_revoked_gateways
        value: "{{ fleet_pki_revoked_gateways }}"
        absent: warn
      - variable: fleet_pki_rotate_gateways
        value: "{{ fleet_pki_rotate_gateways }}"
      - variable: fleet_pki_password_versions
        value: "{{ fleet_pki_password_versions }}"
        type: dict
"""

RETURN = r"""
errors:
  description: One message per bad input or entry, naming the variable and the entry.
  returned: always
  type: list
  elements: str
  sample:
    - >-
      fleet_pki_password_versions key 'LAB-CO/SITE-A/GW-1' is not a gateway of inventory group 'gateways'
      (did you mean 'LAB-CO/SITE-A/GW-01'?)
"""
