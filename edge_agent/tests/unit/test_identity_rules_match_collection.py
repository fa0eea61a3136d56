# SPDX-License-Identifier: Apache-2.0
"""The telemetry contract's identity rules equal the fleet collection's (module_utils/_identity.py).

The collection defines them once; ``ironlink_contract.model`` keeps a copy (the contract is standard library
only and installed without the collection) and its JSON schema is held to that copy by the contract's tests.
This test cannot skip: the collection file is found from the repository root, and a missing file fails.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from ironlink_contract import model

# edge_agent/tests/unit/<this file> -> the repository root, checked by its Makefile so that a moved test
# fails here instead of looking somewhere else.
REPO_ROOT = Path(__file__).resolve().parents[3]
COLLECTION = REPO_ROOT / "collections/ansible_collections/ironlink/fleet"
COLLECTION_FILE = COLLECTION / "plugins/module_utils/_identity.py"


@pytest.fixture(scope="module")
def collection():
    assert (REPO_ROOT / "Makefile").is_file(), f"not the repository root: {REPO_ROOT}"
    assert COLLECTION_FILE.is_file(), f"the collection's identity rules are missing: {COLLECTION_FILE}"
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
