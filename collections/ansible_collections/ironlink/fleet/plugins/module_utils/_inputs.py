# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Checks of operator inputs (role variables, ``-e`` values) naming the variable, the bad entry and the fix.

Pure Python, no Ansible imports. Used by the ``input_types`` lookup (types of a role's list and dict
variables, from its ``meta/argument_specs.yml``) and the ``gateway_refs`` action (day-2 lists of gateway
names).

Why not leave the types to role argument validation: it converts a string given for a list by splitting it
on commas (``"10.0.0.0/8"`` passes as ``["10.0.0.0/8"]``) but the role then reads the unconverted string,
and it does not run at all for ``include_role: tasks_from: preflight``.
"""

from __future__ import annotations

import difflib
import json
import typing as t
from collections.abc import Mapping

from ansible_collections.ironlink.fleet.plugins.module_utils._identity import (
    GATEWAY_NAME,
    NAME_SEPARATOR,
    expected,
    is_valid,
    type_name,
)

# Python types of the argument_spec types this module checks; the others (str, int, ...) are left to the role.
_CONTAINERS = {"list": (list, tuple), "dict": (Mapping,)}
_ELEMENTS = {"str": (str,), "dict": (Mapping,)}
_TYPE_NAMES = {"list": "a list", "dict": "a mapping (dict)", "str": "a string", "dict_element": "a mapping"}

# Password-version accounts that belong to a client, not a gateway: influxdb/CLIENT/write and
# influxdb/CLIENT/read.
STORAGE_KINDS = ("write", "read")


def _type_hint(variable: str, value: t.Any, kind: str) -> str:
    if kind == "list" and isinstance(value, str):
        example = json.dumps({variable: [value]})
        return f"; write it as a YAML list ({variable}: [{value}]), with -e as JSON: -e '{example}'"
    if kind == "dict" and isinstance(value, str):
        return f"; with -e pass JSON: -e '{{\"{variable}\": {{...}}}}'"
    return ""


def type_error(variable: str, value: t.Any, kind: str) -> str | None:
    """The message when ``variable``'s ``value`` is not of argument_spec type ``kind`` (list or dict)."""
    if isinstance(value, _CONTAINERS[kind]):
        return None
    return f"{variable}: expected {_TYPE_NAMES[kind]}, got {type_name(value)} ({value!r})" + _type_hint(
        variable, value, kind
    )


def spec_type_errors(options: Mapping[str, Mapping[str, t.Any]], values: Mapping[str, t.Any]) -> list[str]:
    """Type errors of the list and dict options of an argument spec, and of their elements (str or dict).

    ``options`` is ``argument_specs.<entry>.options``; ``values`` the variables' current (templated)
    values. An option missing from ``values`` is not checked (the role's defaults or ``required`` deal with
    it).
    """
    errors = []
    for variable, spec in options.items():
        kind = spec.get("type", "str")
        if kind not in _CONTAINERS or variable not in values:
            continue
        value = values[variable]
        error = type_error(variable, value, kind)
        if error:
            errors.append(error)
            continue
        elements = spec.get("elements")
        if kind != "list" or elements not in _ELEMENTS:
            continue
        for index, element in enumerate(value):
            if not isinstance(element, _ELEMENTS[elements]):
                wanted = "a string" if elements == "str" else "a mapping"
                errors.append(
                    f"{variable}[{index}]: expected {wanted}, got {type_name(element)} ({element!r})"
                    + ("; quote it in YAML" if elements == "str" else "")
                )
    return errors


def did_you_mean(word: str, candidates: t.Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest candidate (case-insensitive), or an empty string."""
    by_fold = {c.upper(): c for c in candidates}
    close = difflib.get_close_matches(word.upper(), list(by_fold), n=1, cutoff=0.8)
    return f" (did you mean {by_fold[close[0]]!r}?)" if close else ""


def storage_accounts(gateways: t.Iterable[str]) -> list[str]:
    """The InfluxDB accounts of the clients of ``gateways``: influxdb/CLIENT/write and .../read."""
    clients = sorted({name.split(NAME_SEPARATOR)[0] for name in gateways})
    return [f"influxdb/{client}/{kind}" for client in clients for kind in STORAGE_KINDS]


def certificate_names(files: t.Iterable[str]) -> set[str]:
    """Gateway names of certificate files ``CLIENT.SITE.GATEWAY.crt`` or ``CLIENT.SITE.GATEWAY.SERIAL.crt``.

    The fleet_pki role's naming (current certificates, and the ones archived for the CRL); identity ids hold
    no dots, so the first three dot-separated parts are the name. Other files are ignored.
    """
    names = set()
    for path in files:
        parts = path.rsplit("/", 1)[-1].split(".")
        if parts[-1] == "crt" and len(parts) in (4, 5):
            name = NAME_SEPARATOR.join(parts[:3])
            if is_valid(GATEWAY_NAME, name):
                names.add(name)
    return names


def gateway_ref_errors(
    variable: str,
    value: t.Any,
    gateways: t.Sequence[str],
    *,
    kind: str = "list",
    absent: str = "error",
    accounts: t.Sequence[str] = (),
    group: str = "gateways",
    issued: t.Collection[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Check a day-2 input that names gateways: ``(errors, warnings)``.

    ``kind`` ``list``: a list of gateway names (``CLIENT/SITE/GATEWAY``). ``kind`` ``dict``: a mapping
    whose keys are gateway names or one of ``accounts`` (service accounts, storage accounts) and whose
    values are versions (integers >= 1). A well-formed gateway name that is not in ``gateways`` (the
    inventory group) is an error, or a warning when ``absent`` is ``warn`` (revoking a gateway that was
    already removed from the inventory). With ``issued`` (the names that hold or held a certificate), such a
    name is a warning only if it is in ``issued``: a typo in a revocation must not leave the gateway meant
    trusted without a word.
    """
    error = type_error(variable, value, kind)
    if error:
        return [error], []
    errors: list[str] = []
    warnings: list[str] = []
    known = set(gateways)
    others = set(accounts)
    entries = list(value)
    for index, entry in enumerate(entries):
        where = f"{variable}[{index}]" if kind == "list" else f"{variable} key"
        if kind == "dict":
            version = value[entry]
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                errors.append(
                    f"{variable}[{entry!r}] = {version!r}: expected a version number, an integer >= 1"
                )
        if entry in others:
            continue
        if not isinstance(entry, str):
            errors.append(
                f"{where} {entry!r} is {type_name(entry)}, not a gateway name: expected "
                f"{expected(GATEWAY_NAME)}"
            )
            continue
        if entry in known:
            continue
        hint = did_you_mean(entry, [*known, *others])
        if not is_valid(GATEWAY_NAME, entry):
            also = f", or one of {', '.join(sorted(others))}" if others else ""
            errors.append(
                f"{where} {entry!r} is not a gateway name: expected {expected(GATEWAY_NAME)}{also}{hint}"
            )
        elif absent == "warn" and issued is not None and entry not in issued:
            errors.append(
                f"{where} {entry!r} is not a gateway of inventory group {group!r} and no certificate was "
                f"ever issued to it: nothing to revoke{hint}"
            )
        elif absent == "warn":
            warnings.append(
                f"{where} {entry!r} is not a gateway of inventory group {group!r}{hint}: only a "
                "certificate already "
                "issued to it (a gateway removed from the inventory) is revoked; if it was never issued "
                "nothing happens"
            )
        else:
            errors.append(f"{where} {entry!r} is not a gateway of inventory group {group!r}{hint}")
    if kind == "list":
        duplicates = sorted({e for e in entries if isinstance(e, str) and entries.count(e) > 1})
        errors.extend(f"{variable}: {name!r} is listed more than once" for name in duplicates)
    return errors, warnings
