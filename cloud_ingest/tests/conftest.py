# SPDX-License-Identifier: Apache-2.0
"""Ingest test fixtures: the shared ones from ``testsupport.fixtures`` (``tests/`` is on ``PYTHONPATH``)."""

from __future__ import annotations

from testsupport.fixtures import pki, pytest_runtest_makereport, world_dir

__all__ = ["pki", "pytest_runtest_makereport", "world_dir"]
