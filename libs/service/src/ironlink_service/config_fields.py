# SPDX-License-Identifier: Apache-2.0
"""Typed field access over parsed YAML that collects every error instead of stopping at the first.

``load_config`` wants to report every problem of a config in one run (an operator fixing a gateway over a
slow link should not iterate error by error), so field readers record the error, return a placeholder and
carry on; the caller raises once at the end if anything was recorded.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REQUIRED: Any = object()
MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(Exception):
    """A config with problems; ``errors`` holds every one, each naming its field path."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors

    def report(self, path: Path) -> None:
        """Print every error to stderr, the way each ``check-config`` command shows them."""
        print(f"{path}: {len(self.errors)} error(s)", file=sys.stderr)
        for error in self.errors:
            print(f"  {error}", file=sys.stderr)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys (YAML keeps the last one silently)."""

    duplicates: list[str]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable key: construct_mapping reports it
            if duplicate:
                mark = key_node.start_mark
                self.duplicates.append(f"line {mark.line + 1}: duplicate key {key!r}")
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, name: str) -> tuple[object, list[str]]:
    """Parse YAML safely; return the document and any duplicate-key or syntax errors."""
    loader = _StrictLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        return None, [f"{name}: invalid YAML: {exc}".replace("\n", " ")]
    finally:
        loader.dispose()
    return data, [f"{name}: {d}" for d in loader.duplicates]


def _range_msg(value: float, lo: float | None, hi: float | None) -> str:
    return f"{value} is outside [{'' if lo is None else lo}, {'' if hi is None else hi}]"


def join(path: str, key: str) -> str:
    """Field path of ``key`` under ``path``."""
    return f"{path}.{key}" if path else key


class Fields:
    """One YAML mapping under ``path``; unknown keys are errors as soon as it is built."""

    def __init__(self, data: object, path: str, errors: list[str], allowed: Sequence[str]) -> None:
        self.prefix = path
        self.errors = errors
        if data is None:
            data = {}
        if not isinstance(data, dict):
            errors.append(f"{path or '(top level)'}: expected a mapping, got {type(data).__name__}")
            data = {}
        self.data: dict[Any, Any] = data
        for key in data:
            if key not in allowed:
                errors.append(f"{join(path, str(key))}: unknown key (expected one of {', '.join(allowed)})")

    def has(self, key: str) -> bool:
        """True if the key is present (even if null)."""
        return key in self.data

    def where(self, key: str) -> str:
        """Field path of a key."""
        return join(self.prefix, key)

    def error(self, key: str, message: str) -> None:
        """Record an error for a key."""
        self.errors.append(f"{self.where(key)}: {message}")

    def _get(self, key: str, default: Any) -> tuple[bool, Any]:
        if key not in self.data or self.data[key] is None:
            if default is REQUIRED:
                self.error(key, "required")
            return False, default
        return True, self.data[key]

    def text(
        self, key: str, default: Any = None, *, choices: Sequence[str] = (), pattern: str | None = None
    ) -> Any:
        """A string, optionally one of ``choices`` or matching ``pattern`` (fullmatch)."""
        present, value = self._get(key, default)
        if not present:
            return None if value is REQUIRED else value
        if not isinstance(value, str) or not value:
            self.error(key, f"{value!r} is not a non-empty string")
        elif choices and value not in choices:
            self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        elif pattern is not None and re.fullmatch(pattern, value) is None:
            self.error(key, f"{value!r} does not match {pattern}")
        else:
            return value
        return None if default is REQUIRED else default

    def integer(self, key: str, default: Any = None, *, lo: int | None = None, hi: int | None = None) -> Any:
        """An integer (not a bool) within [lo, hi]."""
        present, value = self._get(key, default)
        if not present:
            return None if value is REQUIRED else value
        if not isinstance(value, int) or isinstance(value, bool):
            self.error(key, f"{value!r} is not an integer")
        elif (lo is not None and value < lo) or (hi is not None and value > hi):
            self.error(key, _range_msg(value, lo, hi))
        else:
            return value
        return None if default is REQUIRED else default

    def number(
        self, key: str, default: Any = None, *, lo: float | None = None, hi: float | None = None
    ) -> Any:
        """A finite number (int or float, not bool) within [lo, hi], returned as float."""
        present, value = self._get(key, default)
        if not present:
            return None if value is REQUIRED else value
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            self.error(key, f"{value!r} is not a finite number")
        elif (lo is not None and value < lo) or (hi is not None and value > hi):
            self.error(key, _range_msg(value, lo, hi))
        else:
            return float(value)
        return None if default is REQUIRED else default

    def flag(self, key: str, default: Any = False) -> Any:
        """A YAML boolean (true/false, not 0/1 or strings)."""
        present, value = self._get(key, default)
        if present and not isinstance(value, bool):
            self.error(key, f"{value!r} is not a boolean (true/false)")
            return default
        return value

    def filepath(self, key: str, default: Any = None, *, must_exist: bool = False) -> Any:
        """A path; with ``must_exist`` it must name an existing file (a read-only check)."""
        text = self.text(key, default)
        if text is None or isinstance(text, Path):
            return text
        path = Path(text)
        if must_exist and not path.is_file():
            self.error(key, f"{text!r} does not exist or is not a file")
        return path

    def secret(self, key: str, environ: Mapping[str, str]) -> str | None:
        """``<key>`` literally or ``<key>_env`` naming an environment variable; not both."""
        env_key = f"{key}_env"
        if self.has(key) and self.has(env_key):
            self.error(key, f"set either {key} or {env_key}, not both")
            return None
        if self.has(env_key):
            name = self.text(env_key, REQUIRED, pattern=r"[A-Za-z_][A-Za-z0-9_]*")
            if name is None:
                return None
            if name not in environ:
                self.error(env_key, f"environment variable {name!r} is not set")
                return None
            return environ[name]
        value: str | None = self.text(key)
        return value

    def items(self, key: str) -> Iterator[tuple[object, str]]:
        """Items of a list-valued key with their paths (``key[i]``); a missing key is an empty list."""
        value = self.data.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.error(key, f"expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            yield item, f"{self.where(key)}[{i}]"


def getenv_mapping() -> Mapping[str, str]:
    """The process environment (a function so defaults are not frozen at import)."""
    return os.environ


def read_config_file(path: Path) -> tuple[object, list[str]]:
    """Read a YAML config with a size bound and parse it; unreadable or unparseable raises ConfigError.

    Returns the document and the parse errors that still leave a document (duplicate keys), so the caller's
    validation can report them together with its own.
    """
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_CONFIG_BYTES} bytes"])
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8"]) from None
    data, errors = parse_yaml(text, str(path))
    if data is None and errors:
        raise ConfigError(errors)
    return data, errors


# What both daemons' configs share, read the same way so an operator learns one syntax.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_CHOICES = LOG_LEVELS + tuple(level.lower() for level in LOG_LEVELS)
TLS_KEYS = ("ca_file", "cert_file", "key_file", "insecure_skip_verify")


@dataclass(frozen=True)
class TlsConfig:
    """TLS to a broker; ``cert_file``/``key_file`` (both or neither) for client-certificate auth."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


def read_tls(f: Fields, key: str = "tls") -> TlsConfig | None:
    """The optional ``tls:`` block of ``f``: the CA must exist, a client cert comes with its key."""
    if not f.has(key):
        return None
    t = Fields(f.data[key], f.where(key), f.errors, TLS_KEYS)
    tls = TlsConfig(
        ca_file=t.filepath("ca_file", REQUIRED, must_exist=True),
        cert_file=t.filepath("cert_file", must_exist=True),
        key_file=t.filepath("key_file", must_exist=True),
        insecure_skip_verify=t.flag("insecure_skip_verify", False),
    )
    if t.has("cert_file") != t.has("key_file"):
        t.error("key_file" if t.has("cert_file") else "cert_file", "cert_file and key_file go together")
    return tls


def read_log_level(f: Fields) -> str:
    """``log_level`` (any case), upper-cased for :mod:`logging`; INFO when unset."""
    return (f.text("log_level", "INFO", choices=LOG_CHOICES) or "INFO").upper()
