"""Shared pytest fixtures.

``tests/`` is on ``sys.path`` (rootdir conftest, no ``__init__.py``), so test modules import ``support.*``.
Integration fixtures start real processes (Mosquitto, pymodbus, the agent) and always kill them by PID,
also when the test fails; on failure the agent and broker logs are attached to the report.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fixtures import per_test_bench
from support.programs import require


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
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
def pki(world_dir: Path):
    from support.certs import make_pki

    require("openssl")
    return make_pki(world_dir / "pki")


@pytest.fixture
def stack(request: pytest.FixtureRequest, world_dir: Path, pki):
    from support.stack import Stack

    require("mosquitto", "mosquitto_passwd")
    with per_test_bench(request, world_dir, lambda d: Stack(d, pki), "agent and broker logs") as s:
        yield s
