# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin for ironlink.fleet.identity_check (documentation: plugins/modules/identity_check.py).

Runs on the controller only: it reads variables, never opens a connection to the host.
"""

from __future__ import annotations

import os
import typing as t

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.ironlink.fleet.plugins.module_utils._identity import (
    FIELDS,
    field_error,
    find_duplicates,
    gateway_variables,
    inventory_var,
    misspelt_variables,
    resolve_identity,
)

ARGUMENT_SPEC = {
    "group": {"type": "str", "default": "gateways"},
    "env_fallback": {"type": "bool", "default": True},
    "outside_group": {"type": "bool", "default": False},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        if task_vars is None:
            task_vars = {}
        result = super().run(tmp, task_vars)
        del tmp

        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        group = args["group"]
        environ = os.environ if args["env_fallback"] else None

        me = task_vars["inventory_hostname"]
        if args["outside_group"]:
            return self._outside_group(result, me, group, task_vars)
        # This host: its task vars (inventory, plus play and extra vars), templated in its own context.
        own_values, template_errors = self._read(task_vars, self._templar.template)
        own_identity, own_sources = resolve_identity(own_values, environ)
        for field in template_errors:
            # Defined in the inventory but broken: never papered over by the environment.
            own_identity[field], own_sources[field] = None, "inventory"
        # A misspelt variable (ironlink_gatway_id) leaves the real one unset: name it in that field's error.
        misspelt = misspelt_variables(task_vars)
        errors = []
        for field in FIELDS:
            error = template_errors.get(field) or field_error(field, own_identity[field])
            names = ", ".join(misspelt.get(field, ()))
            if error and names:
                error += f"; {names} is set: did you mean {inventory_var(field)}?"
            elif names:
                self._display.warning(
                    f"identity_check on {me!r}: {names} is set but not used (did you mean "
                    f"{inventory_var(field)}?)"
                )
            if error:
                errors.append(error)

        members = task_vars.get("groups", {}).get(group)
        if members is None:
            errors.append(f"inventory group {group!r} does not exist: uniqueness cannot be checked")
            members = []

        # Every host of the group, including hosts outside --limit. hostvars[host] templates each
        # value on access, in that host's own variable context (ansible-core 2.19 HostVarsVars).
        identities = {me: own_identity}
        hostvars = task_vars.get("hostvars", {})
        for other in members:
            if other == me:
                continue
            values, other_errors = self._read(hostvars[other], lambda value: value)
            if other_errors:
                # That host reports its own broken templates when it runs; it cannot be compared here.
                self._display.warning(
                    f"identity_check on {me!r}: host {other!r} left out of the uniqueness check: "
                    + "; ".join(other_errors.values())
                )
                continue
            identities[other] = resolve_identity(values, environ)[0]
        errors.extend(find_duplicates(identities, host=me))

        result["changed"] = False
        result["identity_source"] = own_sources
        if errors:
            result["failed"] = True
            result["identity"] = own_identity
            result["errors"] = errors
            result["msg"] = (
                f"ironlink identity check failed for host {me!r} ({len(errors)} problem"
                f"{'' if len(errors) == 1 else 's'}):\n"
                + "\n".join(f"  - {error}" for error in errors)
                + "\nThe rules and how to fix each error: docs/identity.md"
            )
            return result

        result["ansible_facts"] = {"ironlink_identity": own_identity}
        triple = "/".join(own_identity[field] for field in ("client_id", "site_id", "gateway_id"))
        result["msg"] = (
            f"identity {triple} ({own_identity['environment']}, {own_identity['hostname']}) "
            f"is valid and unique in group {group!r}"
        )
        return result

    def _outside_group(
        self, result: dict[str, t.Any], me: str, group: str, task_vars: dict[str, t.Any]
    ) -> dict[str, t.Any]:
        """Warn when a host outside ``group`` has a gateway's variables: no gateway play configures it."""
        result["changed"] = False
        members = task_vars.get("groups", {}).get(group) or []
        found = [] if me in members else gateway_variables(task_vars)
        if found:
            warning = (
                f"host {me!r} has {', '.join(found)} but is not in inventory group {group!r}: the "
                f"gateway plays skip it and nothing is configured. Put it in group {group!r} (e.g. in a "
                f"site group under {group!r})."
            )
            result["warnings"] = [warning]
            result["msg"] = warning
        else:
            # Skipped, not ok: a run's recap keeps counting only the gateways whose identity was checked.
            result["skipped"] = True
            result["skip_reason"] = (
                f"host {me!r} has no gateway variables: not a gateway outside group {group!r}"
            )
        result["outside_group"] = found
        return result

    @staticmethod
    def _read(
        variables: t.Mapping[str, t.Any], template: t.Callable[[t.Any], t.Any]
    ) -> tuple[dict[str, t.Any], dict[str, str]]:
        """Read (and template) the identity variables: (values by field, template errors by field).

        A variable that fails to template is reported as such, never silently replaced by the
        environment fallback.
        """
        values: dict[str, t.Any] = {}
        errors: dict[str, str] = {}
        for field in FIELDS:
            name = inventory_var(field)
            try:
                values[field] = template(variables[name]) if name in variables else None
            except AnsibleError as exc:
                errors[field] = f"{name} could not be templated: {exc.message}"
                values[field] = None
        return values, errors
