# SPDX-License-Identifier: Apache-2.0
"""Agent test fixtures.

``tests/`` (the repo-wide ``testsupport`` helpers) is on ``PYTHONPATH`` (root ``pytest.ini``, Makefile);
this directory is on ``sys.path`` because it has no ``__init__.py``, so test modules import the agent-only
helpers as ``support.*``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from testsupport.certs import Pki
from testsupport.fixtures import per_test_bench, pki, pytest_runtest_makereport, world_dir
from testsupport.programs import require

__all__ = ["pki", "pytest_runtest_makereport", "stack", "world_dir"]


@pytest.fixture
def stack(request: pytest.FixtureRequest, world_dir: Path, pki: Pki):
    from support.stack import Stack

    require("mosquitto", "mosquitto_passwd")
    with per_test_bench(request, world_dir, lambda d: Stack(d, pki), "agent and broker logs") as s:
        yield s
