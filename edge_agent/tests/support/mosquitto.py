"""Real Mosquitto brokers as subprocesses on free loopback ports.

- ``local_broker``: the gateway's local broker (plain, anonymous), where machines publish.
- ``cloud_broker``: the cloud side: a TLS listener requiring client certificates *and* a password
  (the agent's way in), a plain password-only listener on loopback for the test's ingest subscriber, an ACL
  that confines the gateway user to ``ironlink/<client>/<site>/<gateway>/#``, and persistence so a stop/start
  (outage) keeps the subscriber's QoS 1 session and queue.

Mosquitto started as root drops to user ``mosquitto``; every file it reads is made world-readable and its
persistence directory is owned by that user. Its log goes to a file the test can read. Stop/kill is by PID.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .certs import Pki
from .modbus_sim import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _chown_mosquitto(path: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        pw = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class Broker:
    name: str
    dir: Path
    conf: str
    ports: dict[str, int]
    proc: subprocess.Popen | None = None
    starts: int = 0
    _log_offset: int = field(default=0)

    @property
    def log_path(self) -> Path:
        return self.dir / "mosquitto.log"

    @property
    def conf_path(self) -> Path:
        return self.dir / "mosquitto.conf"

    def start(self, timeout: float = 10.0) -> Broker:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.conf_path.write_text(self.conf)
        self.conf_path.chmod(0o644)
        with open(self.dir / "mosquitto.out", "ab") as out:  # early errors before the log file opens
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        try:
            for port in self.ports.values():
                _wait_port(port, timeout)
        except OSError:
            self.kill()
            out = (self.dir / "mosquitto.out").read_text(errors="replace")
            raise RuntimeError(
                f"{self.name} broker did not start:\n{out[-2000:]}{self.log()[-2000:]}"
            ) from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM: persistence is saved), SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark_log(self) -> None:
        """Later ``new_log()`` calls return only what was logged after this point."""
        self._log_offset = len(self.log())

    def new_log(self) -> str:
        return self.log()[self._log_offset :]


def _log_file(d: Path) -> Path:
    """Mosquitto's own log file (flushed per line, unlike its block-buffered stdout), owned by its user."""
    path = d / "mosquitto.log"
    path.touch()
    _chown_mosquitto(path)
    return path


@dataclass(frozen=True)
class CloudAccounts:
    gateway_user: str
    gateway_password: str
    ingest_user: str
    ingest_password: str
    topic_prefix: str


def local_broker(d: Path) -> Broker:
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    port = free_port()
    log = _log_file(d)
    conf = f"""\
per_listener_settings false
allow_anonymous true
persistence false
log_dest file {log}
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
connection_messages true
max_queued_messages 200000
max_inflight_messages 100
listener {port} 127.0.0.1
"""
    return Broker("local", d, conf, {"mqtt": port})


def cloud_broker(d: Path, pki: Pki, accounts: CloudAccounts) -> Broker:
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    passwd = d / "passwd"
    passwd.write_text("")
    for user, password in (
        (accounts.gateway_user, accounts.gateway_password),
        (accounts.ingest_user, accounts.ingest_password),
    ):
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), user, password], check=True, timeout=10)
    passwd.chmod(0o644)
    acl = d / "acl"
    acl.write_text(
        f"user {accounts.gateway_user}\n"
        f"topic write {accounts.topic_prefix}/#\n"
        f"topic read {accounts.topic_prefix}/cmd/#\n"
        f"\nuser {accounts.ingest_user}\n"
        "topic read ironlink/#\n"
    )
    acl.chmod(0o644)
    data = d / "data"
    data.mkdir(exist_ok=True)
    _chown_mosquitto(data)
    tls_port, plain_port = free_port(), free_port()
    log = _log_file(d)
    conf = f"""\
per_listener_settings false
allow_anonymous false
password_file {passwd}
acl_file {acl}
persistence true
persistence_location {data}/
autosave_interval 1
log_dest file {log}
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
connection_messages true
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 100
max_packet_size 4000000
listener {tls_port} 127.0.0.1
cafile {pki.ca_cert}
certfile {pki.server_cert}
keyfile {pki.server_key}
require_certificate true
use_identity_as_username false
tls_version tlsv1.2
listener {plain_port} 127.0.0.1
"""
    return Broker("cloud", d, conf, {"tls": tls_port, "plain": plain_port})
