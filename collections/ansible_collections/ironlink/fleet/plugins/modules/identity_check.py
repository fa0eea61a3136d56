#!/usr/bin/python
# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This file holds the documentation only: the work is done by the action plugin
# plugins/action/identity_check.py, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: identity_check
short_description: Validate a gateway's identity and its uniqueness across the fleet
version_added: 0.1.0
description:
  - Resolves the identity of the gateway from inventory variables C(ironlink_client_id),
    C(ironlink_site_id), C(ironlink_gateway_id), C(ironlink_environment) and C(ironlink_hostname).
  - Where one of them is undefined or empty, and O(env_fallback=true), the controller environment
    variable of the same name in upper case (C(IRONLINK_CLIENT_ID), C(IRONLINK_SITE_ID),
    C(IRONLINK_GATEWAY_ID), C(IRONLINK_ENVIRONMENT), C(IRONLINK_HOSTNAME)) is used instead.
    The inventory wins when both are set.
  - Validates each field, then checks that the (client_id, site_id, gateway_id) triple and the
    hostname are not used by any other host of the inventory group O(group), including hosts
    outside C(--limit). Comparisons are case-insensitive.
  - Fails with one message per problem, naming the variable, the bad value and what is expected;
    duplicate messages name both hosts.
  - On success sets the fact C(ironlink_identity) for later plays and roles.
  - Runs on the controller only and never connects to the host, so a failing check changes nothing.
    Run it in a first play with O(ignore:gather_facts=false) and O(ignore:any_errors_fatal=true) so
    that a single bad host stops the run before any host is changed.
  - The identity rules are documented in C(docs/identity.md) of the Ironlink repository.
options:
  group:
    description:
      - Inventory group whose hosts must all have distinct identities.
      - Every host of the group is compared, whether or not it is part of the current run.
    type: str
    default: gateways
  env_fallback:
    description:
      - Use the controller environment variables C(IRONLINK_*) for identity fields that are
        undefined or empty in the inventory.
      - The environment is read on the controller for every host of O(group), so an environment
        variable applies to every host that lacks the inventory variable; two such hosts are
        then reported as duplicates. Use it to provision a single gateway with C(--limit).
    type: bool
    default: true
  outside_group:
    description:
      - Run on hosts outside O(group) (a play on C(all:!gateways)) instead; it never fails, but warns,
        naming the host, when it has a gateway's variables (C(ironlink_site_id), C(ironlink_gateway_id) or
        misspellings of them). Such a host was meant to be a gateway and would otherwise be skipped by every
        gateway play without a word. Any other host is reported as skipped.
    type: bool
    default: false
    version_added: 0.2.0
notes:
  - An C(ironlink_*) variable that is close to an identity variable (C(ironlink_gatway_id)) is named in the
    error of the missing field, with the variable meant; when the field is set as well it is a warning.
  - Identity variables belong in the inventory (C(host_vars), C(group_vars)). The running host
    also sees play and extra vars; other hosts are read through C(hostvars), which holds inventory
    variables, facts and extra vars, templated in that host's own context.
  - A host of O(group) whose identity variables cannot be templated is left out of the uniqueness
    check with a warning; it reports its own error when it runs.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.facts
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
    details: The check only reads variables, so it runs unchanged in check mode.
  connection:
    support: none
    details: Never connects to the host.
  delegation:
    support: none
  diff_mode:
    support: none
  facts:
    support: full
  idempotent:
    description: When run twice with the same inventory, gives the same result and changes nothing.
    support: full
  platform:
    platforms: all
seealso:
  - module: ansible.builtin.assert
author:
  - Ironlink team (@ironlink)
"""

EXAMPLES = r"""
- name: Preflight | check gateway identities before anything changes
  hosts: gateways
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: Check identity and fleet-wide uniqueness
      ironlink.fleet.identity_check:

- name: Check against another group, without the environment fallback
  hosts: lab_gateways
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: Check identity against the lab group only
      ironlink.fleet.identity_check:
        group: lab_gateways
        env_fallback: false

# Provision one new gateway whose identity is not in the inventory yet:
#   IRONLINK_CLIENT_ID=ZAM-WELD IRONLINK_SITE_ID=SITE-A IRONLINK_GATEWAY_ID=GW-07 \
#   IRONLINK_ENVIRONMENT=prod IRONLINK_HOSTNAME=zam-weld-site-a-gw-07 \
#   ansible-playbook playbooks/site.yml --limit new-gateway
# Later plays read the result:
- name: Use the identity
  hosts: gateways
  tasks:
    - name: Show the identity
      ansible.builtin.debug:
        msg: "{{ ansible_facts['ironlink_identity']['gateway_id'] }}"
"""

RETURN = r"""
identity_source:
  description:
    - Where each field came from, V(inventory) or V(env) (V(missing) when unset in both).
    - V(inventory) means any Ansible variable (inventory, play vars, extra vars).
  returned: always
  type: dict
  sample:
    client_id: inventory
    site_id: inventory
    gateway_id: env
    environment: inventory
    hostname: env
identity:
  description: The resolved identity, also on failure (unset fields are V(null)).
  returned: failure
  type: dict
  sample:
    client_id: ZAM-WELD
    site_id: site-a
    gateway_id: GW-01
    environment: prod
    hostname: null
errors:
  description: One message per problem; the same lines as in O(ignore:msg).
  returned: failure
  type: list
  elements: str
  sample:
    - "ironlink_site_id = 'site-a' is invalid: expected 1-32 upper-case letters, digits or dashes, ..."
ansible_facts:
  description: Facts set for the host.
  returned: success
  type: dict
  contains:
    ironlink_identity:
      description: The validated identity.
      returned: success
      type: dict
      sample:
        client_id: ZAM-WELD
        site_id: SITE-A
        gateway_id: GW-01
        environment: prod
        hostname: zam-weld-site-a-gw-01
"""
