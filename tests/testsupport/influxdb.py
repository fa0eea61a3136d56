# SPDX-License-Identifier: Apache-2.0
"""A real InfluxDB 1.x (``/usr/bin/influxd``) on free loopback ports, for integration tests and the bench.

The config is generated into a scratch directory: every listener moved off its default (HTTP, the RPC
``bind-address`` 8088, the disabled graphite/collectd/opentsdb/udp/ifql listeners too), meta/data/wal in the
scratch dir, auth enabled, reporting and the _internal monitor store off. The admin user is created through
InfluxDB's first-user path (``CREATE USER ... WITH ALL PRIVILEGES`` is the one statement accepted without
credentials while no user exists). Stop/kill is by PID, also when a test fails.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procs
from .procs import free_port

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


def _config(d: Path, http_port: int, rpc_port: int) -> str:
    return f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{d}/meta"
  logging-enabled = false

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = true
  log-enabled = false
  pprof-enabled = false
  max-body-size = 25000000

[logging]
  level = "warn"
  suppress-logo = true

[ifql]
  enabled = false
  bind-address = "127.0.0.1:{free_port()}"

[[graphite]]
  enabled = false
  bind-address = "127.0.0.1:{free_port()}"

[[collectd]]
  enabled = false
  bind-address = "127.0.0.1:{free_port()}"

[[opentsdb]]
  enabled = false
  bind-address = "127.0.0.1:{free_port()}"

[[udp]]
  enabled = false
  bind-address = "127.0.0.1:{free_port()}"

[continuous_queries]
  enabled = false
  log-enabled = false
"""


class InfluxError(RuntimeError):
    pass


@dataclass
class InfluxServer(procs.ProcessOwner):
    dir: Path
    http_port: int = field(default_factory=free_port)
    rpc_port: int = field(default_factory=free_port)
    admin_user: str = "admin"
    admin_password: str = "admin-s3cret"
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> InfluxServer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "influxdb.conf"
        conf.write_text(_config(self.dir, self.http_port, self.rpc_port))
        with open(self.dir / "influxd.log", "ab") as out:
            self.proc = subprocess.Popen(
                [INFLUXD, "run", "-config", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "INFLUXDB_REPORTING_DISABLED": "true"},
            )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise InfluxError(f"influxd did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        self.starts += 1
        if self.starts == 1:
            self._first_user()
        return self

    def _first_user(self) -> None:
        q = f"CREATE USER {self.admin_user} WITH PASSWORD '{self.admin_password}' WITH ALL PRIVILEGES"
        self._request("POST", "/query", {"q": q}, auth=None)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the group, SIGKILL after ``timeout``."""
        self._terminate(timeout, group=True)

    def log(self) -> str:
        try:
            return (self.dir / "influxd.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- HTTP ---------------------------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as resp:
                return resp.status == 204
        except (urllib.error.URLError, OSError):
            return False

    def _request(
        self, method: str, path: str, params: dict[str, str], auth: tuple[str, str] | None, body: bytes = b""
    ) -> tuple[int, str]:
        url = f"{self.url}{path}"
        headers = {}
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        if method == "POST" and path == "/query":
            data = urllib.parse.urlencode(params).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            url += "?" + urllib.parse.urlencode(params)
            data = body
        req = urllib.request.Request(url, data=data or None, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            raise InfluxError(f"{method} {path} {params}: HTTP {exc.code}: {text}") from None

    def query(
        self, q: str, db: str | None = None, auth: tuple[str, str] | None = None, epoch: str = "ms"
    ) -> list[dict[str, Any]]:
        """Run InfluxQL (as admin unless ``auth``); the ``results`` list, raising on any statement error."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        _, text = self._request("POST", "/query", params, auth or (self.admin_user, self.admin_password))
        results = json.loads(text).get("results", [])
        for r in results:
            if "error" in r:
                raise InfluxError(f"{q}: {r['error']}")
        return results

    def rows(self, q: str, db: str, auth: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """All rows of the first statement as dicts (tags of GROUP BY merged in)."""
        out = []
        for series in self.query(q, db, auth)[0].get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                out.append(row)
        return out

    def write(self, db: str, lines: str, auth: tuple[str, str] | None = None, precision: str = "ms") -> None:
        self._request(
            "POST",
            "/write",
            {"db": db, "precision": precision},
            auth or (self.admin_user, self.admin_password),
            lines.encode(),
        )

    def create_client_db(self, database: str, user: str, password: str) -> None:
        """What the storage role does per client: database, default RP ``raw``, a write-only user."""
        self.query(f'CREATE DATABASE "{database}"')
        self.query(f'CREATE RETENTION POLICY "raw" ON "{database}" DURATION 0s REPLICATION 1 DEFAULT')
        self.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}'")
        self.query(f'GRANT WRITE ON "{database}" TO "{user}"')

    def count(self, db: str, measurement: str = "telemetry", field_name: str | None = None) -> int:
        """Points in ``measurement`` (COUNT of one field; all fields of a reading are written together)."""
        target = f'"{field_name}"' if field_name else "*"
        res = self.query(f'SELECT COUNT({target}) FROM "{measurement}"', db)[0]
        if "series" not in res:
            return 0
        values = res["series"][0]["values"][0][1:]
        return int(max(v for v in values if v is not None))
