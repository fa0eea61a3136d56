# SPDX-License-Identifier: Apache-2.0
"""Stopping the services the tests start, by PID.

Every service runs in its own session (``start_new_session=True``), so its PID is also its process group:
SIGKILL goes to the whole group so that nothing it forked outlives the test. SIGTERM goes to the process
alone or to the group, as each service needs (a broker saves its persistence on SIGTERM to itself).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

KILL_WAIT_S = 10.0


def running(proc: subprocess.Popen | None) -> bool:
    return proc is not None and proc.poll() is None


def kill(proc: subprocess.Popen, *, check: bool = False) -> int | None:
    """SIGKILL the process group and reap it; the exit code, None if it outlived ``KILL_WAIT_S``.

    ``check`` raises ``subprocess.TimeoutExpired`` instead, for callers that must not go on with it alive.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    try:
        return proc.wait(KILL_WAIT_S)
    except subprocess.TimeoutExpired:
        if check:
            raise
        return None


def terminate(proc: subprocess.Popen, timeout: float, *, group: bool, check: bool = False) -> int | None:
    """SIGTERM (to the process, or its whole group) and wait ``timeout``, then ``kill`` it.

    Returns the exit code of a graceful stop (or of an earlier exit), None when it had to be killed.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill(proc, check=check)
            return None
    return proc.returncode


class ProcessOwner:
    """Mixin for a service wrapper that owns ``proc`` until it is stopped or killed, then forgets it (so that
    it can be started again)."""

    proc: subprocess.Popen | None

    @property
    def running(self) -> bool:
        return running(self.proc)

    def kill(self) -> None:
        """SIGKILL the process group, if any."""
        if self.proc is not None:
            kill(self.proc)
        self.proc = None

    def _terminate(self, timeout: float, *, group: bool) -> int | None:
        """``terminate`` the process, if any; its exit code, None if it had to be killed or was not there."""
        rc = None if self.proc is None else terminate(self.proc, timeout, group=group)
        self.proc = None
        return rc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's pick), for a service the test starts."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
