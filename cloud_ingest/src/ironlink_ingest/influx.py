# SPDX-License-Identifier: Apache-2.0
"""InfluxDB 1.x HTTP API: ``/write`` (line protocol, precision ms) and ``/ping``, stdlib ``http.client``.

Blocking calls (the pipeline runs them in a thread); one keep-alive connection per writer, reopened after
any error. ``classify`` turns a response into ok / permanent (the data itself is refused: retrying cannot
help, so the caller dead-letters) / transient (InfluxDB down, overloaded, database or user not there yet:
retry with backoff, never drop).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import time
import urllib.parse
from dataclasses import dataclass

from ironlink_ingest.config import ClientCredentials, InfluxConfig

MAX_ERROR_TEXT = 500


@dataclass(frozen=True)
class WriteOutcome:
    ok: bool
    permanent: bool = False
    status: int | None = None
    reason: str = ""  # metric label: bad_data, too_large, auth, database_not_found, server_error, unavailable
    error: str = ""
    seconds: float = 0.0


def classify(status: int, body: str) -> WriteOutcome:
    if status == 204:
        return WriteOutcome(True, status=status)
    text = body.strip()[:MAX_ERROR_TEXT]
    if status == 400:
        return WriteOutcome(False, True, status, "bad_data", text)
    if status == 413:
        return WriteOutcome(False, True, status, "too_large", text)
    if status in (401, 403):
        return WriteOutcome(False, False, status, "auth", text)
    if status == 404:
        return WriteOutcome(False, False, status, "database_not_found", text)
    return WriteOutcome(False, False, status, "server_error", text)


class InfluxClient:
    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        parsed = urllib.parse.urlsplit(config.url)
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or (443 if self._https else 8086)
        self._ssl: ssl.SSLContext | None = None
        if self._https:
            self._ssl = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def write(self, creds: ClientCredentials, body: bytes) -> WriteOutcome:
        """POST ``body`` to ``/write?db=<creds.database>&precision=ms`` as the client's write user."""
        t0 = time.monotonic()
        query = urllib.parse.urlencode({"db": creds.database, "precision": "ms"})
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Content-Type": "text/plain; charset=utf-8"}
        try:
            if self._conn is None:
                self._conn = self._connect(self.config.timeout_s)
            self._conn.request("POST", f"/write?{query}", body=body, headers=headers)
            resp = self._conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            outcome = classify(resp.status, text)
            if resp.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            outcome = WriteOutcome(False, False, None, "unavailable", f"{type(exc).__name__}: {exc}")
        return WriteOutcome(
            outcome.ok,
            outcome.permanent,
            outcome.status,
            outcome.reason,
            outcome.error,
            time.monotonic() - t0,
        )

    def ping(self, timeout: float = 3.0) -> bool:
        """``GET /ping`` on a fresh connection (204 without auth in 1.x)."""
        conn = self._connect(timeout)
        try:
            conn.request("GET", "/ping")
            resp = conn.getresponse()
            resp.read()
            return resp.status == 204
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
