# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Gateway identity rules for Ironlink: the one place they are defined.

Pure Python, no Ansible imports, so the rules can be copied verbatim into the edge agent
(``edge_agent`` keeps a copy of the three constants and a test compares them).
The rules are documented for humans in ``docs/identity.md``; keep both in step.

Always match with :func:`re.fullmatch`: with :func:`re.match`, ``$`` would also accept a
trailing newline (``"GW-01\\n"``).
"""

from __future__ import annotations

import difflib
import re
import typing as t
from collections.abc import Mapping

# Client, site and gateway ids: upper-case letters, digits and dashes, 1-32 characters,
# first and last character alphanumeric.  Examples: ZAM-WELD, SITE-A, GW-01.
ID_PATTERN = r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$"

# Gateway hostname: one RFC 1123 label, lower-case only (DNS is case-insensitive, so
# uniqueness has to be too; one spelling per name keeps that simple).
HOSTNAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"

ENVIRONMENTS = ("dev", "staging", "prod")

# Field order is the order errors are reported in.
FIELDS = ("client_id", "site_id", "gateway_id", "environment", "hostname")

# Fields whose combination must be unique across the fleet.
TRIPLE = ("client_id", "site_id", "gateway_id")

# A gateway's name: its triple joined with "/" (CLIENT/SITE/GATEWAY), the certificate CN and MQTT user name.
NAME_SEPARATOR = "/"
GATEWAY_NAME = "gateway_name"

# What roles can check (ironlink.fleet.identity test): the fields, and a gateway's name.
KINDS = (*FIELDS, GATEWAY_NAME)

INVENTORY_PREFIX = "ironlink_"
ENV_PREFIX = "IRONLINK_"

MISSING = "<missing>"

_ID_RE = re.compile(ID_PATTERN)
_HOSTNAME_RE = re.compile(HOSTNAME_PATTERN)

_ID_RULE = "1-32 upper-case letters, digits or dashes, first and last a letter or digit"
_EXPECTED = {
    "client_id": _ID_RULE + " (e.g. 'ZAM-WELD')",
    "site_id": _ID_RULE + " (e.g. 'SITE-A')",
    "gateway_id": _ID_RULE + " (e.g. 'GW-01')",
    "environment": "one of " + ", ".join(repr(e) for e in ENVIRONMENTS),
    "hostname": (
        "an RFC 1123 label: 1-63 lower-case letters, digits or dashes, "
        "first and last a letter or digit (e.g. 'zam-weld-site-a-gw-01')"
    ),
    "gateway_name": "CLIENT/SITE/GATEWAY, each " + _ID_RULE + " (e.g. 'ZAM-WELD/SITE-A/GW-01')",
}


# YAML's words for the types a value can have, in test order (bool is an int in Python, so it comes first).
_TYPE_WORDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (str, "a string"),
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (Mapping, "a mapping"),
    ((list, tuple), "a list"),
    (type(None), "null"),
)


def type_name(value: t.Any) -> str:
    """What a value is, in the words of YAML: a string, an integer, a list, a mapping...

    Never the Python class name: Ansible hands over its own subclasses (``_AnsibleTaggedInt``) that mean
    nothing to an operator.
    """
    for types, word in _TYPE_WORDS:
        if isinstance(value, types):
            return word
    return f"a {type(value).__name__}"


def inventory_var(field: str) -> str:
    """Inventory variable holding ``field``, e.g. ``ironlink_site_id``."""
    return INVENTORY_PREFIX + field


def env_var(field: str) -> str:
    """Controller environment variable holding ``field``, e.g. ``IRONLINK_SITE_ID``."""
    return ENV_PREFIX + field.upper()


def expected(field: str) -> str:
    """Human description of the format ``field`` (or ``gateway_name``) must have."""
    return _EXPECTED[field]


def is_unset(value: t.Any) -> bool:
    """``None`` and the empty string both mean "not set" (and trigger the env fallback)."""
    return value is None or value == ""


def show(value: t.Any) -> str:
    """The value as it appears in error messages: its repr, or ``<missing>``."""
    return MISSING if is_unset(value) else repr(value)


def resolve_identity(
    inventory_values: t.Mapping[str, t.Any],
    environ: t.Mapping[str, str] | None = None,
) -> tuple[dict[str, t.Any], dict[str, str]]:
    """Apply the precedence rule: inventory wins, the environment fills in what is unset.

    ``inventory_values`` maps field names (``client_id``...) to the (already templated)
    inventory values; ``environ`` is the controller environment, or ``None`` to disable the
    fallback. Returns ``(identity, sources)``: the value per field (``None`` when unset in
    both places) and where each came from: ``inventory``, ``env`` or ``missing``.
    """
    identity: dict[str, t.Any] = {}
    sources: dict[str, str] = {}
    for field in FIELDS:
        value = inventory_values.get(field)
        if not is_unset(value):
            identity[field], sources[field] = value, "inventory"
            continue
        env_value = environ.get(env_var(field)) if environ is not None else None
        if not is_unset(env_value):
            identity[field], sources[field] = env_value, "env"
        else:
            identity[field], sources[field] = None, "missing"
    return identity, sources


def field_error(field: str, value: t.Any) -> str | None:
    """The error message for one field's value, or ``None`` when it is valid."""
    variable = inventory_var(field)
    if is_unset(value):
        return (
            f"{variable} = {MISSING}: expected {expected(field)}; "
            f"set it in the inventory or export {env_var(field)} on the controller"
        )
    if not isinstance(value, str):
        return (
            f"{variable} = {value!r} is {type_name(value)}, not a string: "
            f'expected {expected(field)}; quote the value in YAML (quote it: {variable}: "..."; '
            "unquoted, 01 is read as the number 1)"
        )
    if field == "environment":
        ok = value in ENVIRONMENTS
    elif field == "hostname":
        ok = _HOSTNAME_RE.fullmatch(value) is not None
    else:
        ok = _ID_RE.fullmatch(value) is not None
    if ok:
        return None
    return f"{variable} = {value!r} is invalid: expected {expected(field)}"


def is_valid(kind: str, value: t.Any) -> bool:
    """Whether ``value`` is a valid ``kind``: one of :data:`FIELDS`, or ``gateway_name``."""
    if kind == GATEWAY_NAME:
        if not isinstance(value, str):
            return False
        parts = value.split(NAME_SEPARATOR)
        return len(parts) == len(TRIPLE) and all(is_valid(TRIPLE[i], part) for i, part in enumerate(parts))
    if kind not in FIELDS:
        raise ValueError(f"unknown identity kind {kind!r}: expected one of {', '.join(KINDS)}")
    return field_error(kind, value) is None


def gateway_name(client_id: str, site_id: str, gateway_id: str) -> str:
    """The gateway's name, e.g. ``ZAM-WELD/SITE-A/GW-01`` (not validated: see :func:`is_valid`)."""
    return NAME_SEPARATOR.join((client_id, site_id, gateway_id))


def validate_identity(identity: t.Mapping[str, t.Any]) -> list[str]:
    """Check one gateway identity; return one message per bad field (empty list: valid).

    Each message names the inventory variable, shows the bad value (repr, or ``<missing>``)
    and says what is expected.
    """
    errors = []
    for field in FIELDS:
        error = field_error(field, identity.get(field))
        if error:
            errors.append(error)
    return errors


def _key(
    identity: t.Mapping[str, t.Any], fields: t.Sequence[str], fold: t.Callable[[str], str]
) -> tuple | None:
    values = []
    for field in fields:
        value = identity.get(field)
        if is_unset(value) or not isinstance(value, str):
            return None  # an incomplete identity is reported by validate_identity, not as a duplicate
        values.append(fold(value))
    return tuple(values)


def find_duplicates(identities: t.Mapping[str, t.Mapping[str, t.Any]], host: str | None = None) -> list[str]:
    """Find identities used by more than one host.

    ``identities`` maps inventory host name to identity. Two checks, both case-insensitive:
    the (client_id, site_id, gateway_id) triple and the hostname. One message per pair of
    hosts, naming both. With ``host`` given, only pairs involving that host are reported.
    """
    checks = (
        (
            TRIPLE,
            str.upper,
            lambda ident: "duplicate gateway identity ({})".format(
                ", ".join(f"{f}={ident[f]!r}" for f in TRIPLE)
            ),
            "give each gateway its own " + inventory_var("gateway_id"),
        ),
        (
            ("hostname",),
            str.lower,
            lambda ident: f"duplicate {inventory_var('hostname')} {ident['hostname']!r}",
            "hostnames must be unique across the fleet",
        ),
    )
    errors = []
    for fields, fold, describe, hint in checks:
        seen: dict[tuple, list[str]] = {}
        for name in sorted(identities):
            key = _key(identities[name], fields, fold)
            if key is not None:
                seen.setdefault(key, []).append(name)
        for names in seen.values():
            for i, first in enumerate(names):
                for second in names[i + 1 :]:
                    if host is not None and host not in (first, second):
                        continue
                    errors.append(
                        f"{describe(identities[first])}: hosts {first!r} and {second!r} both use it; {hint}"
                    )
    return errors


def misspelt_variables(names: t.Iterable[str]) -> dict[str, list[str]]:
    """Variables that look like a misspelt identity variable: ``{field: [names]}``.

    ``names`` are variable names (a host's variables); an ``ironlink_*`` name that is not an identity variable
    but close to one (``ironlink_gatway_id``) is reported under that field, so the error can say what was
    meant.
    """
    wanted = {inventory_var(field): field for field in FIELDS}
    found: dict[str, list[str]] = {}
    for name in sorted(names):
        if not isinstance(name, str) or not name.lower().startswith(INVENTORY_PREFIX) or name in wanted:
            continue
        close = difflib.get_close_matches(name.lower(), list(wanted), n=1, cutoff=0.85)
        if close:
            found.setdefault(wanted[close[0]], []).append(name)
    return found


# The fields only a gateway has: a host outside the gateways group with one of them was meant to be a gateway.
# (Cloud hosts have an environment and a hostname too.)
GATEWAY_ONLY = ("site_id", "gateway_id")


def gateway_variables(names: t.Iterable[str]) -> list[str]:
    """The gateway-only identity variables (or misspellings of them) among ``names``: what marks a gateway."""
    names = [name for name in names if isinstance(name, str)]
    misspelt = misspelt_variables(names)
    wanted = {inventory_var(field) for field in GATEWAY_ONLY}
    found = {name for name in names if name in wanted}
    found.update(name for field in GATEWAY_ONLY for name in misspelt.get(field, ()))
    return sorted(found)
