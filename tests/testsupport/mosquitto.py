# SPDX-License-Identifier: Apache-2.0
"""Real Mosquitto brokers as subprocesses on free loopback ports.

- ``local_broker``: the gateway's local broker (plain, anonymous), where machines publish.
- ``cloud_broker``: the cloud side: a TLS listener requiring client certificates *and* a password
  (the agent's way in), a plain password-only listener on loopback for the test's ingest subscriber, an ACL
  that confines the gateway user to ``ironlink/<client>/<site>/<gateway>/#``, and persistence so a stop/start
  (outage) keeps the subscriber's QoS 1 session and queue. ``secure_broker`` builds it from accounts and
  an ACL; the ingest tests' broker (``ingest_broker``) is the same with other accounts.

Mosquitto started as root drops to user ``mosquitto``; every file it reads is made world-readable and its
persistence directory is owned by that user. Its log goes to a file the test can read. Stop/kill is by PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import procs
from .certs import Pki
from .procs import free_port

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
class Broker(procs.ProcessOwner):
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
        """Graceful stop (SIGTERM to mosquitto itself: persistence is saved), SIGKILL after ``timeout``."""
        self._terminate(timeout, group=False)

    def restart(self) -> None:
        self.stop()
        self.start()

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


def _logging(log: Path) -> str:
    """Config lines logging to ``log``, with connections and subscriptions: tests wait for those lines."""
    types = [f"log_type {t}" for t in ("error", "warning", "notice", "information", "subscribe")]
    return "\n".join([f"log_dest file {log}", *types, "connection_messages true"])


def _write_accounts(d: Path, users: Iterable[tuple[str, str]], acl: str) -> tuple[Path, Path]:
    """The ``passwd`` (hashed by mosquitto_passwd) and ``acl`` files in ``d``, readable by user mosquitto."""
    passwd = d / "passwd"
    passwd.write_text("")
    for user, password in users:
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), user, password], check=True, timeout=10)
    passwd.chmod(0o644)
    acl_path = d / "acl"
    acl_path.write_text(acl)
    acl_path.chmod(0o644)
    return passwd, acl_path


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
{_logging(log)}
max_queued_messages 200000
max_inflight_messages 100
listener {port} 127.0.0.1
"""
    return Broker("local", d, conf, {"mqtt": port})


def _tls_listener(
    port: int,
    *,
    cafile: Path,
    certfile: Path,
    keyfile: Path,
    crlfile: Path | None = None,
    identity_as_username: bool = False,
) -> str:
    """A loopback TLS listener that requires a client certificate from ``cafile`` (checked against
    ``crlfile`` when given); with ``identity_as_username`` the certificate's CN is the login, otherwise a
    password is needed too."""
    crl = f"crlfile {crlfile}\n" if crlfile is not None else ""
    as_username = "true" if identity_as_username else "false"
    return (
        f"listener {port} 127.0.0.1\ncafile {cafile}\ncertfile {certfile}\nkeyfile {keyfile}\n{crl}"
        f"require_certificate true\nuse_identity_as_username {as_username}\ntls_version tlsv1.2"
    )


def secure_broker(
    name: str, d: Path, pki: Pki, users: Iterable[tuple[str, str]], acl: str, *, max_packet_size: int
) -> Broker:
    """A cloud-side broker: password ``users`` confined by ``acl``; persistence with no queue limit, so an
    outage loses no session or message; a TLS listener that also requires a client certificate (``tls``)
    and a password-only one (``plain``), both on loopback."""
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    passwd, acl_path = _write_accounts(d, users, acl)
    data = d / "data"
    data.mkdir(exist_ok=True)
    _chown_mosquitto(data)
    tls_port, plain_port = free_port(), free_port()
    log = _log_file(d)
    conf = f"""\
per_listener_settings false
allow_anonymous false
password_file {passwd}
acl_file {acl_path}
persistence true
persistence_location {data}/
autosave_interval 1
{_logging(log)}
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 100
max_packet_size {max_packet_size}
{_tls_listener(tls_port, cafile=pki.ca_cert, certfile=pki.server_cert, keyfile=pki.server_key)}
listener {plain_port} 127.0.0.1
"""
    return Broker(name, d, conf, {"tls": tls_port, "plain": plain_port})


def cloud_broker(d: Path, pki: Pki, accounts: CloudAccounts) -> Broker:
    users = [
        (accounts.gateway_user, accounts.gateway_password),
        (accounts.ingest_user, accounts.ingest_password),
    ]
    acl = (
        f"user {accounts.gateway_user}\n"
        f"topic write {accounts.topic_prefix}/#\n"
        f"topic read {accounts.topic_prefix}/cmd/#\n"
        f"\nuser {accounts.ingest_user}\n"
        "topic read ironlink/#\n"
    )
    return secure_broker("cloud", d, pki, users, acl, max_packet_size=4_000_000)


def certificate_broker(d: Path, *, cafile: Path, certfile: Path, keyfile: Path, crlfile: Path) -> Broker:
    """The fleet broker's mutual-TLS listener as roles/cloud_broker configures it: a client certificate from a
    trusted CA (``cafile``, checked against ``crlfile``) is the login, its CN the user name. ``restart()``
    re-reads the files, which callers replace in place (Mosquitto 2.0 reloads no CA or CRL on SIGHUP)."""
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)
    port = free_port()
    listener = _tls_listener(
        port, cafile=cafile, certfile=certfile, keyfile=keyfile, crlfile=crlfile, identity_as_username=True
    )
    conf = f"""\
per_listener_settings false
allow_anonymous false
persistence false
{_logging(_log_file(d))}
{listener}
"""
    return Broker("fleet", d, conf, {"tls": port})
