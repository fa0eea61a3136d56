# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by the agent's and the ingest's integration tests, and the lifetime of a per-test bench.

A suite's ``conftest.py`` imports what it uses from here (``from testsupport.fixtures import pki, ...``):
pytest registers hooks and fixtures found in a conftest's namespace. Integration fixtures start real
processes (Mosquitto, influxd, the daemons) and always kill them by PID, also when the test fails; on failure
their logs are attached to the report.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from testsupport.certs import Pki, make_pki
from testsupport.programs import require


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the item (``rep_call``...), for :func:`per_test_bench`."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def world_dir() -> Iterator[Path]:
    """A 0755 scratch root: Mosquitto runs as user ``mosquitto`` and cannot enter pytest's 0700 tmp dirs."""
    d = Path(tempfile.mkdtemp(prefix="ironlink-it-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(world_dir: Path) -> Pki:
    """A CA with server and client certificates (openssl), once per session."""
    require("openssl")
    return make_pki(world_dir / "pki")


class _Bench(Protocol):
    def diagnostics(self) -> str: ...

    def close(self) -> None: ...


B = TypeVar("B", bound=_Bench)


@contextlib.contextmanager
def per_test_bench(
    request: pytest.FixtureRequest, world_dir: Path, build: Callable[[Path], B], title: str
) -> Iterator[B]:
    """``build`` a bench in a directory named after the test, and always close it (its processes by PID).

    When the test failed, the bench's ``diagnostics()`` (its logs) go into the report under ``title``;
    ``rep_call`` is set by the ``pytest_runtest_makereport`` hook above.
    """
    d = world_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    d.mkdir()
    bench = build(d)
    try:
        yield bench
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            rep.sections.append((title, bench.diagnostics()))
        bench.close()
