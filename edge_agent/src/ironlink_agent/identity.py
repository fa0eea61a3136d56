# SPDX-License-Identifier: Apache-2.0
"""Gateway identity: from ``/etc/ironlink/identity.json`` (written by the gateway role) or the config.

The rules are the fleet's (``contract.model``); a gateway with a missing or invalid identity must not run,
because every reading it sends would be attributed to the wrong client, site or gateway.
"""

from __future__ import annotations

import json
from pathlib import Path

from ironlink_contract.model import Identity, identity_errors

DEFAULT_IDENTITY_FILE = Path("/etc/ironlink/identity.json")
IDENTITY_KEYS = ("client_id", "site_id", "gateway_id", "environment", "hostname")
IDENTITY_FILE_SCHEMA_VERSION = 1
_MAX_FILE_BYTES = 64 * 1024


def parse_identity(
    data: object, where: str, *, file_format: bool = False
) -> tuple[Identity | None, list[str]]:
    """Identity from a mapping, or every error (each naming ``where.<key>``).

    ``file_format`` accepts (and requires) the identity file's ``schema_version`` key.
    """
    if not isinstance(data, dict):
        return None, [f"{where}: expected a mapping, got {type(data).__name__}"]
    allowed = set(IDENTITY_KEYS) | ({"schema_version"} if file_format else set())
    errors = [f"{where}.{key}: unknown key" for key in data if key not in allowed]
    if file_format:
        version = data.get("schema_version")
        if version != IDENTITY_FILE_SCHEMA_VERSION or isinstance(version, bool):
            errors.append(f"{where}.schema_version: {version!r} is not {IDENTITY_FILE_SCHEMA_VERSION}")
    errors += identity_errors(data, where)
    if errors:
        return None, errors
    return Identity(*(data[key] for key in IDENTITY_KEYS)), []


def load_identity_file(path: Path) -> tuple[Identity | None, list[str]]:
    """Read and validate the identity file; errors name the file. Reads only."""
    where = f"identity_file ({path})"
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, [f"{where}: cannot read: {exc.strerror or exc}"]
    if len(raw) > _MAX_FILE_BYTES:
        return None, [f"{where}: larger than {_MAX_FILE_BYTES} bytes"]
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return None, [f"{where}: not valid JSON: {exc}"]
    return parse_identity(data, where, file_format=True)
