# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""InfluxDB 1.x v1 HTTP API helpers for ironlink.fleet modules (private: not a public API).

Only the standard library and ``ansible.module_utils.urls``: the managed host needs no ``influxdb``
Python library. Works with InfluxDB 1.6 (Debian bookworm) and 1.8 (InfluxData's repository).

Also holds a small InfluxQL tokenizer used to compare a statement as written in a playbook with the
canonical text InfluxDB stores and prints (``SHOW CONTINUOUS QUERIES``): InfluxDB re-formats a
statement when it saves it (keywords upper case, function names lower case, needless identifier
quotes removed, durations such as ``60m`` printed as ``1h``), so both sides are reduced to the same
token sequence before comparison.
"""

from __future__ import annotations

import json
import re

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlencode
from ansible.module_utils.urls import open_url

# InfluxQL keywords (influxql/scanner tokens). Printed in upper case by InfluxDB; an identifier equal
# to one of them must stay double-quoted.
KEYWORDS = frozenset(
    [
        "ALL",
        "ALTER",
        "AND",
        "ANALYZE",
        "ANY",
        "AS",
        "ASC",
        "BEGIN",
        "BY",
        "CARDINALITY",
        "CREATE",
        "CONTINUOUS",
        "DATABASE",
        "DATABASES",
        "DEFAULT",
        "DELETE",
        "DESC",
        "DESTINATIONS",
        "DIAGNOSTICS",
        "DISTINCT",
        "DROP",
        "DURATION",
        "END",
        "EVERY",
        "EXACT",
        "EXPLAIN",
        "FALSE",
        "FIELD",
        "FOR",
        "FROM",
        "GRANT",
        "GRANTS",
        "GROUP",
        "GROUPS",
        "IN",
        "INF",
        "INSERT",
        "INTO",
        "KEY",
        "KEYS",
        "KILL",
        "LIMIT",
        "MEASUREMENT",
        "MEASUREMENTS",
        "NAME",
        "OFFSET",
        "ON",
        "OR",
        "ORDER",
        "PASSWORD",
        "POLICIES",
        "POLICY",
        "PRIVILEGES",
        "QUERIES",
        "QUERY",
        "READ",
        "REPLICATION",
        "RESAMPLE",
        "RETENTION",
        "REVOKE",
        "SELECT",
        "SERIES",
        "SET",
        "SHARD",
        "SHARDS",
        "SLIMIT",
        "SOFFSET",
        "STATS",
        "SUBSCRIPTION",
        "SUBSCRIPTIONS",
        "TAG",
        "TO",
        "TRUE",
        "USER",
        "USERS",
        "VALUES",
        "WHERE",
        "WITH",
        "WRITE",
    ]
)

_BARE_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^([0-9]+)(ns|u|µ|ms|s|m|h|d|w)$")
_UNITS_NS = {
    "ns": 1,
    "u": 1000,
    "µ": 1000,
    "ms": 1000**2,
    "s": 1000**3,
    "m": 60 * 1000**3,
    "h": 3600 * 1000**3,
    "d": 86400 * 1000**3,
    "w": 7 * 86400 * 1000**3,
}
# Order InfluxDB's FormatDuration tries units in: the largest unit that divides the value evenly.
_FORMAT_UNITS = ("w", "d", "h", "m", "s", "ms", "u")
_OPERATORS = ("=~", "!~", "!=", "<>", "<=", ">=", "::")
# After one of these tokens a "/" starts a regular expression, not a division.
_REGEX_CONTEXT = frozenset({".", "FROM", "=~", "!~"})


class InfluxDBError(Exception):
    """An HTTP, connection or query error; ``status`` is the HTTP status (0 when none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def connection_argument_spec() -> dict:
    """Options shared by modules talking to the InfluxDB 1.x HTTP API."""
    return {
        "hostname": {"type": "str", "default": "localhost"},
        "port": {"type": "int", "default": 8086},
        "ssl": {"type": "bool", "default": False},
        "validate_certs": {"type": "bool", "default": True},
        "username": {"type": "str", "aliases": ["login_username"]},
        "password": {"type": "str", "no_log": True, "aliases": ["login_password"]},
        "timeout": {"type": "int", "default": 10},
    }


class InfluxDBAPI:
    """The InfluxDB 1.x ``/query`` endpoint (POST, so that writes and reads both work)."""

    def __init__(
        self,
        *,
        hostname: str = "localhost",
        port: int = 8086,
        ssl: bool = False,
        validate_certs: bool = True,
        username: str | None = None,
        password: str | None = None,
        timeout: int = 10,
    ) -> None:
        scheme = "https" if ssl else "http"
        self.base_url = f"{scheme}://{hostname}:{port}"
        self.username = username
        self.password = password
        self.validate_certs = validate_certs
        self.timeout = timeout

    @classmethod
    def from_params(cls, params: dict) -> InfluxDBAPI:
        keys = ("hostname", "port", "ssl", "validate_certs", "username", "password", "timeout")
        return cls(**{k: params[k] for k in keys})

    def query(self, statement: str, database: str | None = None) -> list:
        """Run one or more statements; return the ``results`` list, raise InfluxDBError on any error."""
        fields = {"q": statement}
        if database:
            fields["db"] = database
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        auth = {}
        if self.username:
            auth = {
                "url_username": self.username,
                "url_password": self.password or "",
                "force_basic_auth": True,
            }
        try:
            response = open_url(
                self.base_url + "/query",
                data=urlencode(fields),
                method="POST",
                headers=headers,
                validate_certs=self.validate_certs,
                timeout=self.timeout,
                **auth,
            )
            body = response.read()
        except HTTPError as exc:
            raise InfluxDBError(_error_text(exc.read() if exc.fp else b"", exc.reason), exc.code) from exc
        except (URLError, OSError) as exc:
            raise InfluxDBError(f"cannot reach InfluxDB at {self.base_url}: {to_native(exc)}") from exc
        try:
            results = json.loads(to_text(body))["results"]
        except (ValueError, KeyError) as exc:
            raise InfluxDBError(f"unexpected answer from InfluxDB: {to_native(body)[:200]}") from exc
        for result in results:
            if "error" in result:
                raise InfluxDBError(result["error"], 200)
        return results


def _error_text(body: bytes, reason: object) -> str:
    try:
        return json.loads(to_text(body))["error"]
    except (ValueError, KeyError, TypeError):
        return to_native(reason)


def parse_show_continuous_queries(results: list) -> dict:
    """Map (database, name) to the stored statement text, from ``SHOW CONTINUOUS QUERIES`` results."""
    found = {}
    for result in results:
        for series in result.get("series", []):
            columns = series.get("columns", [])
            for row in series.get("values", []):
                entry = dict(zip(columns, row, strict=False))
                found[(series.get("name"), entry.get("name"))] = entry.get("query")
    return found


def quote_ident(name: str) -> str:
    """Quote an identifier the way InfluxDB does: only when it is not a plain word or is a keyword."""
    if _BARE_IDENT.match(name) and name.upper() not in KEYWORDS:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_duration(text: str) -> int:
    """Nanoseconds of an InfluxQL duration literal with one or more units (``1h``, ``1h30m``)."""
    parts = re.findall(r"([0-9]+)(ns|ms|u|µ|s|m|h|d|w)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not an InfluxQL duration: {text!r}")
    return sum(int(n) * _UNITS_NS[u] for n, u in parts)


def format_duration(nanoseconds: int) -> str:
    """Format like InfluxDB's FormatDuration: the largest unit that divides the value evenly."""
    if nanoseconds == 0:
        return "0s"
    for unit in _FORMAT_UNITS:
        if nanoseconds % _UNITS_NS[unit] == 0:
            return f"{nanoseconds // _UNITS_NS[unit]}{unit}"
    return f"{nanoseconds}ns"


def build_create_statement(
    name: str,
    database: str,
    query: str,
    resample_every: str | None = None,
    resample_for: str | None = None,
) -> str:
    """The CREATE CONTINUOUS QUERY statement for a SELECT ... INTO ... GROUP BY time(...) query."""
    resample = ""
    if resample_every or resample_for:
        resample = " RESAMPLE"
        if resample_every:
            resample += f" EVERY {resample_every}"
        if resample_for:
            resample += f" FOR {resample_for}"
    body = " ".join(query.split())
    return (
        f"CREATE CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(database)}{resample} BEGIN {body} END"
    )


def _read_quoted(text: str, start: int, quote: str) -> tuple[str, int]:
    """Return (content with escapes resolved, index after the closing quote)."""
    out = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == quote:
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise ValueError(f"unterminated {quote} quote at offset {start}")


def _scan_string(text: str, i: int, tokens: list) -> int | None:
    if text[i] == "'":
        content, end = _read_quoted(text, i, "'")
        tokens.append("'" + content.replace("'", "\\'") + "'")
        return end
    if text[i] == '"':
        content, end = _read_quoted(text, i, '"')
        tokens.append(("ident", content))
        return end
    return None


def _scan_regex(text: str, i: int, tokens: list) -> int | None:
    if text[i] != "/" or (tokens and _plain(tokens[-1]) not in _REGEX_CONTEXT):
        return None
    end = i + 1
    while end < len(text) and text[end] != "/":
        end += 2 if text[end] == "\\" else 1
    if end >= len(text):
        raise ValueError(f"unterminated regular expression at offset {i}")
    tokens.append(text[i : end + 1])
    return end + 1


def _scan_symbol(text: str, i: int, tokens: list) -> int | None:
    if text[i] == ":" and text[i : i + 2] != "::":
        match = re.match(r":[A-Za-z_]+", text[i:])
        if match:
            tokens.append(match.group(0).upper())
            return i + len(match.group(0))
    operator = next((op for op in _OPERATORS if text.startswith(op, i)), None)
    if operator:
        tokens.append(operator)
        return i + len(operator)
    return None


def _scan_literal(text: str, i: int, tokens: list) -> int | None:
    match = _DURATION_LITERAL.match(text, i)
    if match:
        tokens.append(format_duration(parse_duration(match.group(0))))
        return match.end()
    match = _NUMBER_LITERAL.match(text, i)
    if match and match.group(0):
        tokens.append(match.group(0))
        return match.end()
    match = _WORD.match(text, i)
    if match:
        tokens.append(("word", match.group(0)))
        return match.end()
    return None


_SCANNERS = (_scan_string, _scan_regex, _scan_symbol, _scan_literal)
_DURATION_LITERAL = re.compile(r"[0-9]+(?:ns|ms|u|µ|s|m|h|d|w)(?![A-Za-z0-9_])")
_NUMBER_LITERAL = re.compile(r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def tokenize(statement: str) -> list[str]:
    """Split an InfluxQL statement into canonical tokens (whitespace dropped).

    Strings stay ``'...'``; identifiers lose needless double quotes; keywords go upper case and
    function names lower case; duration literals are re-formatted the way InfluxDB prints them.
    Raises ValueError on an unterminated quote or regular expression.
    """
    tokens: list = []
    i = 0
    while i < len(statement):
        if statement[i].isspace():
            i += 1
            continue
        for scan in _SCANNERS:
            end = scan(statement, i, tokens)
            if end is not None:
                i = end
                break
        else:
            tokens.append(statement[i])
            i += 1
    return [_canonical(tokens, index) for index in range(len(tokens))]


def _plain(token: object) -> str:
    if isinstance(token, tuple):
        return token[1].upper() if token[0] == "word" else token[1]
    return str(token)


def _canonical(tokens: list, index: int) -> str:
    token = tokens[index]
    if not isinstance(token, tuple):
        return token
    kind, value = token
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    if kind == "word":
        if value.upper() in KEYWORDS:
            return value.upper()
        if following == "(":
            return value.lower()
        return value
    return quote_ident(value)


def normalise(statement: str) -> tuple[str, ...]:
    """A comparable form of a statement: equal for the text written and the text InfluxDB stores."""
    return tuple(tokenize(statement))
