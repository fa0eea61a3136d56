# SPDX-License-Identifier: Apache-2.0
"""Raw values -> canonical ``Reading`` or ``Rejected``: the single gate between inputs and the spool.

Rules (docs/telemetry-contract.md, "Normalisation"):

- Metric names must be in the ``metrics:`` catalogue. Unknown names reject the reading (``unknown_metric``)
  unless ``unknown_metrics: accept``, which still requires a canonical name and infers the type.
- Values are coerced to the catalogue type where that loses nothing: int -> float; integral float -> int;
  numeric strings ("21.5", "-3", "1e3") -> float/int; 0/1 and "true"/"false"/"on"/"off"/"1"/"0" -> bool.
  Anything else is ``bad_type``. NaN and +/-inf are ``non_finite``, however they arrive.
- Bounds (``min``/``max``, inclusive) apply after coercion: ``out_of_bounds``.
- One bad metric rejects the whole reading (a reading is what the cloud de-duplicates; half of one would be a
  silent drop). The ``Rejected.detail`` names every offending field.

It runs on the hot path (target >= 100k three-metric readings/s per core), hence the plain loops.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from math import isfinite
from typing import Any

from ironlink_contract.model import (
    INT_MAX,
    INT_MIN,
    MAX_METRICS_PER_READING,
    MAX_STR_VALUE_LEN,
    QUALITIES,
    STATUSES,
    TS_MAX_MS,
    TS_MIN_MS,
    MetricValue,
    Reading,
    Rejected,
    is_valid_machine_id,
    is_valid_metric_name,
)

from ironlink_agent.config_inputs import MetricSpec

_FLOAT_RE = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_INT_RE = re.compile(r"\s*[+-]?\d{1,19}\s*")
_TRUE = frozenset(("true", "on", "1", "yes"))
_FALSE = frozenset(("false", "off", "0", "no"))
_STATUS = {s: s for s in STATUSES}
_QUALITY = {q: q for q in QUALITIES}
_TYPES = {"float": float, "int": int, "bool": bool, "str": str}


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _to_float(v: object) -> float:
    if isinstance(v, float):
        f = float(v)  # float() also turns subclasses (numpy.float64) into plain floats
    elif isinstance(v, int) and not isinstance(v, bool):
        try:
            f = float(v)
        except OverflowError:
            raise _Bad("out_of_bounds", f"{v} does not fit a float") from None
    elif isinstance(v, str) and len(v) <= 64 and _FLOAT_RE.fullmatch(v):
        f = float(v)
    else:
        raise _Bad("bad_type", f"{_show(v)} is not a number")
    if not isfinite(f):
        raise _Bad("non_finite", f"{f} is not finite")
    return f


def _to_int(v: object) -> int:
    if isinstance(v, bool):
        raise _Bad("bad_type", f"{v} is not an integer")
    if isinstance(v, int):
        i = int(v)
    elif isinstance(v, float):
        if not isfinite(v):
            raise _Bad("non_finite", f"{v} is not finite")
        if not v.is_integer():
            raise _Bad("bad_type", f"{v} is not an integer")
        i = int(v)
    elif isinstance(v, str) and _INT_RE.fullmatch(v):
        i = int(v)
    else:
        raise _Bad("bad_type", f"{_show(v)} is not an integer")
    if not INT_MIN <= i <= INT_MAX:
        raise _Bad("out_of_bounds", f"{i} does not fit int64")
    return i


def _to_bool(v: object) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return v == 1
    if isinstance(v, str) and len(v) <= 8:
        low = v.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise _Bad("bad_type", f"{_show(v)} is not a boolean")


def _to_str(v: object) -> str:
    if not isinstance(v, str):
        raise _Bad("bad_type", f"{_show(v)} is not a string")
    if len(v) > MAX_STR_VALUE_LEN:
        raise _Bad("too_long", f"string of {len(v)} characters over {MAX_STR_VALUE_LEN}")
    if not v.isascii():
        try:
            v.encode()
        except UnicodeEncodeError:
            raise _Bad("bad_type", "string is not valid Unicode (lone surrogate)") from None
    return str(v)


def _infer(v: object) -> MetricValue:
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return _to_int(v)
    if isinstance(v, float):
        return _to_float(v)
    if isinstance(v, str):
        return _to_str(v)
    raise _Bad("bad_type", f"{_show(v)} is not a number, boolean or string")


_CONVERT = {float: _to_float, int: _to_int, bool: _to_bool, str: _to_str}


def _field(name: object) -> str:
    return name if isinstance(name, str) and is_valid_metric_name(name) else _show(name)


def _show(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


class Normaliser:
    """Checks and coerces readings against the metric catalogue. Immutable; safe to share across threads."""

    __slots__ = ("_accept_unknown", "_specs")

    def __init__(self, specs: Iterable[MetricSpec] = (), *, accept_unknown: bool = False) -> None:
        self._specs: dict[str, tuple[Any, float | None, float | None]] = {
            s.name: (_CONVERT[_TYPES[s.type]], s.min, s.max) for s in specs
        }
        self._accept_unknown = accept_unknown

    @classmethod
    def from_config(cls, config: Any) -> Normaliser:
        """From a ``config.Config`` (its ``metrics`` and ``unknown_metrics``)."""
        return cls(config.metrics, accept_unknown=config.unknown_metrics == "accept")

    def normalise(
        self,
        machine_id: str,
        ts: int,
        values: Mapping[str, object],
        *,
        source: str,
        raw: bytes = b"",
        status: object = None,
        quality: object = None,
    ) -> Reading | Rejected:
        """One reading, or a Rejected naming every offending field (reason = the first problem's code)."""
        problems: list[tuple[str, str]] = []
        if not is_valid_machine_id(machine_id):
            problems.append(("bad_machine_id", f"machine_id {_show(machine_id)} is not a valid machine id"))
        if type(ts) is not int or not TS_MIN_MS <= ts < TS_MAX_MS:
            problems.append(("bad_timestamp", f"ts {_show(ts)} is not epoch ms in [2000, 2100)"))
        if not values:
            problems.append(("no_metrics", "reading has no metrics"))
        elif len(values) > MAX_METRICS_PER_READING:
            problems.append(("too_many_metrics", f"{len(values)} metrics over {MAX_METRICS_PER_READING}"))
            values = {}
        metrics: dict[str, MetricValue] = {}
        specs = self._specs
        for name, v in values.items():
            spec = specs.get(name)
            try:
                if spec is None:
                    if not self._accept_unknown:
                        raise _Bad("unknown_metric", "not in the metrics catalogue")
                    if not is_valid_metric_name(name):
                        raise _Bad("unknown_metric", "not a canonical metric name")
                    metrics[name] = _infer(v)
                    continue
                conv, lo, hi = spec
                out = conv(v)
                if lo is not None and out < lo:
                    raise _Bad("out_of_bounds", f"{out} below min {lo}")
                if hi is not None and out > hi:
                    raise _Bad("out_of_bounds", f"{out} above max {hi}")
                metrics[name] = out
            except _Bad as bad:
                problems.append((bad.reason, f"metrics.{_field(name)}: {bad.detail}"))
        status_out = _enum(status, _STATUS, "status", problems)
        quality_out = _enum(quality, _QUALITY, "quality", problems)
        if problems:
            return Rejected.of(problems[0][0], "; ".join(d for _, d in problems), source, raw)
        return Reading(machine_id, ts, metrics, status_out, quality_out)


def _enum(value: object, table: dict[str, str], field: str, problems: list[tuple[str, str]]) -> str | None:
    if value is None:
        return None
    found = table.get(value.strip().lower()) if isinstance(value, str) and len(value) <= 32 else None
    if found is None:
        problems.append((f"bad_{field}", f"{field} {_show(value)} is not one of {', '.join(table)}"))
    return found
