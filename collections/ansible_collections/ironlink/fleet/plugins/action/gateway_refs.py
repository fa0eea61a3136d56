# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin for ironlink.fleet.gateway_refs (documentation: plugins/modules/gateway_refs.py).

Runs on the controller only: it checks the values it is given, never opens a connection to the host.
"""

from __future__ import annotations

import os
import typing as t

from ansible.plugins.action import ActionBase
from ansible_collections.ironlink.fleet.plugins.module_utils._inputs import (
    certificate_names,
    gateway_ref_errors,
    storage_accounts,
)

ARGUMENT_SPEC = {
    "gateways": {"type": "list", "elements": "str", "required": True},
    "accounts": {"type": "list", "elements": "str", "default": []},
    "group": {"type": "str", "default": "gateways"},
    "certificate_dirs": {"type": "list", "elements": "path"},
    "inputs": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "variable": {"type": "str", "required": True},
            "value": {"type": "raw", "required": True},
            "type": {"type": "str", "default": "list", "choices": ["list", "dict"]},
            "absent": {"type": "str", "default": "error", "choices": ["error", "warn"]},
        },
    },
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars or {})
        del tmp

        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        gateways = args["gateways"]
        # Password versions may also name the clients' InfluxDB accounts, derived from the gateways' names.
        accounts = [*args["accounts"], *storage_accounts(gateways)]
        issued = None
        if args["certificate_dirs"] is not None:
            # Read on the controller (the action never runs on the host); a missing directory holds none.
            issued = certificate_names(
                os.path.join(directory, name)
                for directory in args["certificate_dirs"]
                if os.path.isdir(directory)
                for name in os.listdir(directory)
            )
        errors: list[str] = []
        warnings: list[str] = []
        for item in args["inputs"]:
            item_errors, item_warnings = gateway_ref_errors(
                item["variable"],
                item["value"],
                gateways,
                kind=item["type"],
                absent=item["absent"],
                accounts=accounts if item["type"] == "dict" else (),
                group=args["group"],
                issued=issued,
            )
            errors.extend(item_errors)
            warnings.extend(item_warnings)

        result["changed"] = False
        result["errors"] = errors
        if warnings:
            result["warnings"] = warnings
        if errors:
            result["failed"] = True
            result["msg"] = (
                f"{len(errors)} bad day-2 input{'' if len(errors) == 1 else 's'}:\n"
                + "\n".join(f"  - {error}" for error in errors)
                + f"\nGateways of group {args['group']!r}: {', '.join(sorted(gateways)) or '(none)'}"
            )
        else:
            result["msg"] = f"{len(args['inputs'])} inputs checked against {len(gateways)} gateways"
        return result
