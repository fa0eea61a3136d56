# SPDX-License-Identifier: GPL-3.0-or-later
"""roles/cloud_ingest/files/wheelhouse.py: the source digest that decides whether a cloud host needs the
ingest installed (and check mode's answer) changes exactly when a wheel's content would."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "roles" / "cloud_ingest" / "files" / "wheelhouse.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wheelhouse", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wheelhouse = _load()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the three distributions' sources, without their build leftovers."""
    for dist in wheelhouse.DISTRIBUTIONS:
        shutil.copytree(
            ROOT / dist,
            tmp_path / dist,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"),
        )
    return tmp_path


def test_digest_of_the_repository_is_stable() -> None:
    assert wheelhouse.digest(ROOT) == wheelhouse.digest(ROOT)
    assert len(wheelhouse.digest(ROOT)) == 64


@pytest.mark.parametrize(
    "path",
    [
        "cloud_ingest/src/ironlink_ingest/pipeline.py",
        "libs/contract/src/ironlink_contract/schema/telemetry-v1.json",
        "libs/service/pyproject.toml",
        "cloud_ingest/README.md",
    ],
)
def test_a_change_to_wheel_content_changes_the_digest(tree: Path, path: str) -> None:
    before = wheelhouse.digest(tree)
    with (tree / path).open("a") as f:
        f.write("\n")
    assert wheelhouse.digest(tree) != before


def test_a_new_module_changes_the_digest(tree: Path) -> None:
    before = wheelhouse.digest(tree)
    (tree / "libs/service/src/ironlink_service/extra.py").write_text("X = 1\n")
    assert wheelhouse.digest(tree) != before


@pytest.mark.parametrize(
    "path",
    [
        "cloud_ingest/tests/unit/test_new.py",
        "cloud_ingest/src/ironlink_ingest/__pycache__/cli.cpython-311.pyc",
        "cloud_ingest/src/ironlink_ingest.egg-info/PKG-INFO",
        "libs/contract/bench/other_bench.py",
    ],
)
def test_files_outside_the_wheels_leave_the_digest_alone(tree: Path, path: str) -> None:
    before = wheelhouse.digest(tree)
    (tree / path).parent.mkdir(parents=True, exist_ok=True)
    (tree / path).write_text("not in any wheel\n")
    assert wheelhouse.digest(tree) == before


def test_a_wrong_source_dir_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"is not a distribution .* check cloud_ingest_source_dir"):
        wheelhouse.digest(tmp_path)
