"""The agent's identity rules must equal the fleet collection's (module_utils/_identity.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from ironlink_agent.contract import model

COLLECTION_FILE = (
    Path(__file__).resolve().parents[3]
    / "collections/ansible_collections/ironlink/fleet/plugins/module_utils/_identity.py"
)


@pytest.fixture(scope="module")
def collection():
    if not COLLECTION_FILE.exists():
        pytest.skip(f"collection identity rules not written yet: {COLLECTION_FILE}")
    spec = importlib.util.spec_from_file_location("_ironlink_fleet_identity", COLLECTION_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pattern(value: object) -> str:
    return value.pattern if isinstance(value, re.Pattern) else str(value)


def test_id_pattern_matches(collection):
    assert _pattern(collection.ID_PATTERN) == model.ID_PATTERN


def test_hostname_pattern_matches(collection):
    assert _pattern(collection.HOSTNAME_PATTERN) == model.HOSTNAME_PATTERN


def test_environments_match(collection):
    assert tuple(collection.ENVIRONMENTS) == model.ENVIRONMENTS
