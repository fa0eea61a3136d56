# SPDX-License-Identifier: Apache-2.0
"""Health endpoint (``/health``, ``/metrics``) on a tiny asyncio HTTP/1.1 server, and the health file.

A hand-rolled server keeps the agent at stdlib + paho + pymodbus: it answers two GET paths for a local
Prometheus scraper, systemd-side probes and ``ironlink-agent status``, one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Report = Callable[[], tuple[bool, dict[str, Any]]]
MAX_REQUEST = 8192


class HealthServer:
    def __init__(self, host: str, port: int, report: Report, metrics_text: Callable[[], str]) -> None:
        self.host = host
        self.port = port
        self._report = report
        self._metrics_text = metrics_text
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]  # resolves port 0 (tests)
        log.info(
            "health server listening",
            extra={"event": "health_listening", "host": self.host, "port": self.port},
        )

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` (for the runtime's supervisor)."""
        if self._server is None:
            await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = path.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            elif path == "/health":
                healthy, doc = self._report()
                status, ctype = (200 if healthy else 503), "application/json"
                body = json.dumps(doc, sort_keys=True).encode() + b"\n"
            elif path == "/metrics":
                status, ctype = 200, "text/plain; version=0.0.4; charset=utf-8"
                body = self._metrics_text().encode()
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[
                status
            ]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + (body if method == "GET" else b"")
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError):
            pass
        except Exception:
            log.exception("health request failed", extra={"event": "health_request_error"})
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def write_health_file(path: Path, doc: dict[str, Any]) -> None:
    """Atomically replace ``path`` (temp file in the same directory, fsync'd data, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
