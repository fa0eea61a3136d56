# SPDX-License-Identifier: Apache-2.0
"""Real service binaries the integration tests start (installed by scripts/setup.sh)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """A precondition of the test is missing: skip for a developer, fail under CI (``CI`` set), which must
    not pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require(*programs: str) -> None:
    """Skip when a program is missing for a developer; fail under CI (see :func:`unavailable`)."""
    missing = [p for p in programs if shutil.which(p) is None and not Path(f"/usr/sbin/{p}").exists()]
    if missing:
        unavailable(f"not installed: {', '.join(missing)} (scripts/setup.sh installs them)")
