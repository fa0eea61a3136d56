"""Real service binaries the integration tests start (installed by scripts/setup.sh)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def require(*programs: str) -> None:
    """Skip when a program is missing for a developer; fail under CI, which must not pass by skipping."""
    missing = [p for p in programs if shutil.which(p) is None and not Path(f"/usr/sbin/{p}").exists()]
    if not missing:
        return
    message = f"not installed: {', '.join(missing)} (scripts/setup.sh installs them)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
