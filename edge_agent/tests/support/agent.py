# SPDX-License-Identifier: Apache-2.0
"""The agent as a real subprocess (``python -m ironlink_agent run --config ...``), so tests can ``kill -9``
it, read its JSON log, scrape its metrics endpoint and measure it from ``/proc``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml
from testsupport import procs

_CLK_TCK = os.sysconf("SC_CLK_TCK")
AGENT_CMD = [sys.executable, "-m", "ironlink_agent", "run", "--config"]
if os.environ.get("IRONLINK_TEST_AGENT_CMD"):  # e.g. to run an installed agent build
    AGENT_CMD = [*os.environ["IRONLINK_TEST_AGENT_CMD"].split(), "--config"]
_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {"name{labels}": value} (labels exactly as rendered)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


class AgentProcess:
    def __init__(self, config_path: Path, log_path: Path, http_port: int, env: dict[str, str] | None = None):
        self.config_path = config_path
        self.log_path = log_path
        self.http_port = http_port
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # set by the Stack: blocks until the agent's inputs are live (e.g. its MQTT subscriptions exist)
        self.before_start: Callable[[], object] | None = None
        self.after_start: Callable[[object], None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self, wait: bool = True, timeout: float = 20.0) -> AgentProcess:
        assert self.proc is None or self.proc.poll() is not None, "agent already running"
        token = self.before_start() if self.before_start else None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*AGENT_CMD, str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.starts += 1
        if wait:
            self.wait_http(timeout)
            if self.after_start:
                self.after_start(token)
        return self

    def wait_http(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"agent exited early (rc={self.rc}):\n{self.log_text()[-4000:]}")
            try:
                self.metrics_text(timeout=1.0)
                return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"agent metrics endpoint not up:\n{self.log_text()[-4000:]}") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def rc(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def alive(self) -> bool:
        return procs.running(self.proc)

    def kill9(self) -> None:
        """SIGKILL the group (a crash); raises if it is not gone within 10 s."""
        if self.alive:
            assert self.proc is not None
            procs.kill(self.proc, check=True)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        procs.terminate(self.proc, timeout, group=False, check=True)
        return self.proc.poll()

    # -- observation ----------------------------------------------------------------------------------

    def metrics_text(self, timeout: float = 5.0) -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read().decode()

    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.metrics_text())

    def metric(self, name: str, **labels: str) -> float:
        """One series' value (0 when absent); name without the ``ironlink_agent_`` prefix."""
        full = "ironlink_agent_" + name
        if labels:
            full += "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        return self.metrics().get(full, 0.0)

    def metric_sum(self, name: str) -> float:
        full = "ironlink_agent_" + name
        return sum(v for k, v in self.metrics().items() if k == full or k.startswith(full + "{"))

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict):
                    records.append(doc)
        return records

    def non_json_log_lines(self) -> list[str]:
        bad = []
        for line in self.log_text().splitlines():
            try:
                json.loads(line)
            except ValueError:
                bad.append(line)
        return bad

    def _status(self) -> dict[str, str]:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key] = value.strip()
        return out

    def rss_kb(self) -> int:
        return int(self._status()["VmRSS"].split()[0])

    def hwm_kb(self) -> int:
        return int(self._status()["VmHWM"].split()[0])

    def cpu_seconds(self) -> float:
        """utime + stime of the agent process (all its threads)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
