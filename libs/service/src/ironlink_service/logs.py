# SPDX-License-Identifier: Apache-2.0
"""JSON-lines logging on stderr, secret redaction, and rate-limited repeated warnings.

journald stores stderr verbatim, and fleet log shipping parses one JSON object per line, so every record
is a flat object: ``ts``, ``level``, ``logger``, ``msg``, ``event`` plus the record's ``extra`` fields.
Redaction is applied to every field of every record, not left to call sites, because a secret that
reaches a log once is already shipped.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

SECRET_KEYS = frozenset(
    {"password", "passwd", "secret", "token", "key", "key_file", "private_key", "api_key", "authorization"}
)
MASK = "***"

_STD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}
_known_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value so it is masked wherever it appears in a log line, even inside text."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _known_secrets.add(value)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in SECRET_KEYS or lowered.endswith(("password", "_secret", "_token"))


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with secret-named keys masked and registered secret values removed.

    Works on mappings, sequences, dataclass-like objects (via ``vars``) and strings.
    """
    if isinstance(value, Mapping):
        return {
            k: (MASK if _is_secret_key(str(k)) and v is not None else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, str):
        with _secrets_lock:
            secrets = tuple(_known_secrets)
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, int | float | bool) or value is None:
        return value
    if hasattr(value, "__dataclass_fields__"):
        return redact({name: getattr(value, name) for name in value.__dataclass_fields__})
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields are merged in and redacted."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "event": getattr(record, "event", None) or record.name.rsplit(".", 1)[-1],
        }
        for key, val in record.__dict__.items():
            if key not in _STD_ATTRS and key not in doc:
                doc[key] = val
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(redact(doc), default=str, separators=(",", ":"))


def setup_logging(level: str = "info", stream: Any = None) -> None:
    """Configure the root logger once: JSON lines on stderr (or ``stream``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # paho and pymodbus are chatty at DEBUG; their errors surface through our own logs.
    logging.getLogger("pymodbus").setLevel(max(logging.WARNING, root.level))


class RateLimitedLog:
    """Log an event at most once per ``interval_s``, reporting how many occurrences were folded in.

    Used for per-reading conditions (spool full, dead letters) that can happen thousands of times a second:
    the first occurrence logs immediately, later ones are summed into the next line.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._pending: dict[str, int] = {}

    def log(self, level: int, event: str, msg: str, count: int = 1, **fields: Any) -> None:
        now = time.monotonic()
        with self._lock:
            total = self._pending.get(event, 0) + count
            if now - self._last.get(event, -1e9) < self._interval:
                self._pending[event] = total
                return
            self._last[event] = now
            self._pending[event] = 0
        self._logger.log(level, msg, extra={"event": event, "count": total, **fields})
