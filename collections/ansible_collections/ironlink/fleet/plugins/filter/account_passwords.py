# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: account_passwords
short_description: Derive the versioned password of each account from one secret seed
version_added: 0.2.0
description:
  - Returns a dictionary of account name to password, each derived from O(seed) as
    C(base64url(HMAC-SHA256(seed, "ironlink-fleet-pki-v1:" + label))) without padding (43 characters), where
    the label is C(<label_prefix><account>/v<version>).
  - The version of an account is O(versions[account]), or 1 when the account is not in O(versions); raising
    it rotates that account's password alone.
  - The same seed, account and version always give the same password, so a converge is idempotent without
    storing any password; without the seed no password can be computed, and one password says nothing about
    another.
  - The fleet_pki role of the Ironlink repository derives every MQTT and InfluxDB password of a fleet this way
    (see C(docs/pki.md)).
options:
  _input:
    description: Account names, for example V(ACME/S1/GW-01) or V(influxdb/ACME/write).
    type: list
    elements: str
    required: true
  seed:
    description: The secret seed (a vaulted value), at least 32 characters.
    type: str
    required: true
  versions:
    description: Password version per account name (without O(label_prefix)).
    type: dict
    default: {}
  label_prefix:
    description: Prepended to the account name in the label only, for example V(mqtt/).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: MQTT passwords of the service accounts, ingest rotated once
  ansible.builtin.set_fact:
    service_passwords: >-
      {{ ['ingest', 'ops'] | ironlink.fleet.account_passwords(seed=vault_seed, versions={'ingest': 2},
                                                              label_prefix='mqtt/') }}
  # {"ingest": <label mqtt/ingest/v2>, "ops": <label mqtt/ops/v1>}
  no_log: true
"""

RETURN = r"""
_value:
  description: Password per account, in the order of the input.
  type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.ironlink.fleet.plugins.plugin_utils._passwords import account_label, derive_password


def account_passwords(
    accounts: t.Iterable[str],
    seed: str,
    versions: t.Mapping[str, t.Any] | None = None,
    label_prefix: str = "",
) -> dict[str, str]:
    """Password per account: ``derive_password(seed, <label_prefix><account>/v<version>)``."""
    if isinstance(accounts, (str, bytes)) or not isinstance(accounts, t.Iterable):
        raise AnsibleFilterError(
            "ironlink.fleet.account_passwords: the input must be a list of account names"
        )
    if versions is None:
        versions = {}
    if not isinstance(versions, t.Mapping):
        raise AnsibleFilterError("ironlink.fleet.account_passwords: versions must be a dictionary")
    out = {}
    for account in accounts:
        if not isinstance(account, str) or not account:
            raise AnsibleFilterError(f"ironlink.fleet.account_passwords: bad account name {account!r}")
        try:
            out[account] = derive_password(seed, account_label(account, versions, label_prefix))
        except ValueError as exc:
            # The message names the problem, never the seed.
            raise AnsibleFilterError(f"ironlink.fleet.account_passwords: {exc}") from None
    return out


class FilterModule:
    """Ironlink password derivation."""

    def filters(self) -> dict:
        return {"account_passwords": account_passwords}
