# SPDX-License-Identifier: Apache-2.0
"""Read-side operations for operators: ``status`` (health file or /health) and ``spool stats``/``export``.

All of them are read-only and safe while the agent runs: the spool is opened ``mode=ro`` (WAL lets a
reader see the last committed state without blocking the writer), the health file is replaced
atomically by the agent, and /health is a GET.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ironlink_contract.wire import unpack_reading

from .spool import iter_rows, open_readonly

STALE_AFTER_S = 30.0


def read_health_file(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    age = time.time() - doc.get("ts", 0) / 1000
    if age > STALE_AFTER_S:
        doc["stale_s"] = round(age, 1)
    return doc


def fetch_health(url: str, timeout_s: float = 3.0) -> dict[str, Any]:
    """GET /health; a 503 still carries the JSON document."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - operator-given URL
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            return dict(json.loads(exc.read()))
        raise


def summarize(doc: dict[str, Any]) -> str:
    spool = doc.get("spool", {})
    uplink = doc.get("uplink", {})
    counters = doc.get("counters", {})
    age = spool.get("oldest_age_s")
    lines = [
        f"status:    {doc.get('status')}"
        + (f"  (health file stale: {doc['stale_s']}s old)" if "stale_s" in doc else ""),
        f"version:   {doc.get('version')}  pid {doc.get('pid')}  uptime {doc.get('uptime_s')}s",
        f"gateway:   {doc.get('gateway')}",
        f"uplink:    {'connected' if uplink.get('connected') else 'DISCONNECTED'} to {uplink.get('host')}"
        + (f"  last error: {uplink['last_error']}" if uplink.get("last_error") else ""),
        f"spool:     {spool.get('depth')} readings, {spool.get('bytes')} bytes, "
        f"oldest {'-' if age is None else f'{age}s'}, {spool.get('pending')} pending, "
        f"{spool.get('dead_letters')} dead letters",
        "counters:  " + ", ".join(f"{k} {int(v)}" for k, v in counters.items()),
    ]
    lines += [f"PROBLEM:   {p}" for p in doc.get("problems", [])]
    lines += [f"warning:   {w}" for w in doc.get("warnings", [])]
    return "\n".join(lines)


def spool_stats(path: Path) -> dict[str, Any]:
    conn = open_readonly(path)
    try:
        spool_id = conn.execute("SELECT value FROM meta WHERE key='spool_id'").fetchone()
        count, nbytes, lo, hi = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(data)), 0), MIN(seq), MAX(seq) FROM readings"
        ).fetchone()
        oldest = conn.execute("SELECT data FROM readings ORDER BY seq LIMIT 1").fetchone()
        newest = conn.execute("SELECT data FROM readings ORDER BY seq DESC LIMIT 1").fetchone()
        dead, dl_lo = conn.execute("SELECT COUNT(*), MIN(ts_ms) FROM dead_letters").fetchone()
        reasons = dict(conn.execute("SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason").fetchall())
    finally:
        conn.close()
    files = {p.name: p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()}
    return {
        "path": str(path),
        "spool_id": spool_id[0] if spool_id else None,
        "readings": count,
        "reading_bytes": nbytes,
        "first_seq": lo,
        "last_seq": hi,
        "oldest_ts": unpack_reading(oldest[0]).ts if oldest else None,
        "newest_ts": unpack_reading(newest[0]).ts if newest else None,
        "dead_letters": dead,
        "dead_letter_reasons": reasons,
        "oldest_dead_letter_ts": dl_lo,
        "file_bytes": files,
        "filesystem_free_bytes": _free(path),
    }


def _free(path: Path) -> int:
    st = os.statvfs(path.parent)
    return st.f_bavail * st.f_frsize


def export(path: Path, what: str, out: TextIO, limit: int | None = None) -> int:
    """Write JSON lines (``{"kind": "reading"|"dead_letter", ...}``); returns the number written."""
    conn = open_readonly(path)
    written = 0
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='spool_id'").fetchone()
        spool_id = row[0] if row else ""
        sources: list[Iterator[dict[str, Any]]] = []
        if what in ("readings", "all"):
            sources.append(_readings(conn, spool_id))
        if what in ("dead-letters", "all"):
            sources.append(_dead_letters(conn))
        for source in sources:
            for doc in source:
                if limit is not None and written >= limit:
                    return written
                out.write(json.dumps(doc, separators=(",", ":")) + "\n")
                written += 1
    finally:
        conn.close()
    return written


def _readings(conn: Any, spool_id: str) -> Iterator[dict[str, Any]]:
    for seq, data in iter_rows(conn, "readings"):
        r = unpack_reading(data)  # type: ignore[arg-type]
        yield {
            "kind": "reading",
            "message_id": f"{spool_id}:{seq}",
            "seq": seq,
            "machine_id": r.machine_id,
            "ts": r.ts,
            "metrics": r.metrics,
            "status": r.status,
            "quality": r.quality,
        }


def _dead_letters(conn: Any) -> Iterator[dict[str, Any]]:
    for row_id, ts_ms, reason, detail, source, raw in iter_rows(conn, "dead_letters"):
        raw_b = bytes(raw)  # type: ignore[arg-type]
        try:
            text: str | None = raw_b.decode()
        except UnicodeDecodeError:
            text = None
        yield {
            "kind": "dead_letter",
            "id": row_id,
            "ts": ts_ms,
            "reason": reason,
            "detail": detail,
            "source": source,
            "raw": text,
            "raw_b64": None if text is not None else base64.b64encode(raw_b).decode(),
        }
