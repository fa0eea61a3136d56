# SPDX-License-Identifier: Apache-2.0
"""Service library test fixtures: the shared ones from ``testsupport.fixtures``."""

from __future__ import annotations

from testsupport.fixtures import pki, world_dir

__all__ = ["pki", "world_dir"]
