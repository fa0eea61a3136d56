# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: storage_accounts
short_description: Name each client's InfluxDB database and users
version_added: 0.2.0
description:
  - The one naming rule of the per-client storage. Database C(<prefix><slug>); users C(<prefix><slug>_write),
    which the ingest service writes with, and C(<prefix><slug>_read), for dashboards. The slug is the client
    id in lower case with dashes as underscores. V(ZAM-WELD) with prefix V(ironlink_) gives
    C(ironlink_zam_weld), C(ironlink_zam_weld_write) and C(ironlink_zam_weld_read).
  - The cloud_storage role of the Ironlink repository creates these and publishes the result as the fact
    C(cloud_storage_accounts), which the ingest play reads; nothing else should rebuild the names.
options:
  _input:
    description: Client ids (duplicates are dropped).
    type: list
    elements: str
    required: true
  prefix:
    description: Prefix of every name; lower-case letters, digits and underscores, not starting with a digit.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Names of two clients
  ansible.builtin.debug:
    msg: "{{ ['ZAM-WELD', 'ACME-PACK'] | ironlink.fleet.storage_accounts(prefix='ironlink_') }}"
  # [{"client": "ACME-PACK", "database": "ironlink_acme_pack", "write_user": "ironlink_acme_pack_write",
  #   "read_user": "ironlink_acme_pack_read"}, {"client": "ZAM-WELD", ...}]
"""

RETURN = r"""
_value:
  description: One entry per client, sorted by client id.
  type: list
  elements: dict
  contains:
    client:
      description: The client id.
      type: str
    database:
      description: The client's database.
      type: str
    write_user:
      description: The user that may write to the database.
      type: str
    read_user:
      description: The user that may read the database.
      type: str
"""

import re
import typing as t

from ansible.errors import AnsibleFilterError

# InfluxQL identifiers the role can use unquoted, and so the prefix's shape.
_PREFIX_RE = re.compile(r"[a-z_][a-z0-9_]*")


def storage_accounts(client_ids: t.Iterable[str], prefix: str) -> list[dict[str, str]]:
    """Database and user names per client, sorted by client id."""
    if isinstance(client_ids, (str, bytes)) or not isinstance(client_ids, t.Iterable):
        raise AnsibleFilterError("ironlink.fleet.storage_accounts: the input must be a list of client ids")
    if not isinstance(prefix, str) or _PREFIX_RE.fullmatch(prefix) is None:
        raise AnsibleFilterError(
            f"ironlink.fleet.storage_accounts: prefix {prefix!r} must be lower-case letters, digits and "
            "underscores, not starting with a digit"
        )
    out = []
    for client in sorted({str(c) for c in client_ids}):
        base = prefix + client.lower().replace("-", "_")
        out.append(
            {"client": client, "database": base, "write_user": base + "_write", "read_user": base + "_read"}
        )
    return out


class FilterModule:
    """Ironlink storage naming."""

    def filters(self) -> dict:
        return {"storage_accounts": storage_accounts}
