# SPDX-License-Identifier: Apache-2.0
"""Repo test fixtures: the shared ones from ``testsupport.fixtures``."""

from __future__ import annotations

from testsupport.fixtures import world_dir

__all__ = ["world_dir"]
