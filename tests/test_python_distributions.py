# SPDX-License-Identifier: GPL-3.0-or-later
"""The four Python distributions hold what they say, built as wheels (``pip wheel --no-deps``) as roles do.

The gateway agent's wheel carries no ingest code and no ``ironlink-ingest`` command; the ingest's wheel does
not pull in the agent or the Modbus libraries; the contract depends on nothing; internal pins match.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTS = {
    "ironlink_contract": ROOT / "libs/contract",
    "ironlink_service": ROOT / "libs/service",
    "ironlink_agent": ROOT / "edge_agent",
    "ironlink_ingest": ROOT / "cloud_ingest",
}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    out = tmp_path_factory.mktemp("wheels")
    # Built from copies: pip builds in the source tree, and a role or another test building the same
    # checkout at the same time must not share (or find stale) build/ directories with this one.
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    copies = [shutil.copytree(d, src / d.name, ignore=ignore) for d in DISTS.values()]
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out)]
    subprocess.run([*pip_wheel, *map(str, copies)], check=True, timeout=600)
    found = {}
    for name in DISTS:
        (path,) = out.glob(f"{name}-*-py3-none-any.whl")
        found[name] = zipfile.ZipFile(path)
    return found


def _metadata(wheel: zipfile.ZipFile) -> tuple[str, list[str]]:
    """(version, Requires-Dist lines) of a wheel."""
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    msg = Parser().parsestr(wheel.read(name).decode())
    return msg["Version"], msg.get_all("Requires-Dist") or []


def _requirement_names(requires: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0].lower() for r in requires}


def _entry_points(wheel: zipfile.ZipFile) -> str:
    names = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    return wheel.read(names[0]).decode() if names else ""


def test_agent_wheel_holds_no_ingest(wheels):
    agent = wheels["ironlink_agent"]
    files = agent.namelist()
    assert any(f.startswith("ironlink_agent/") for f in files)
    ingest_files = [f for f in files if "ingest" in f.split(".dist-info")[0]]
    assert ingest_files == [], f"ingest code in the agent wheel: {ingest_files}"
    assert "ironlink-ingest" not in _entry_points(agent)
    # The contract and the service library are dependencies, not copies.
    assert not [f for f in files if f.startswith(("ironlink_contract/", "ironlink_service/"))]


def test_ingest_wheel_needs_neither_agent_nor_modbus(wheels):
    ingest = wheels["ironlink_ingest"]
    _, requires = _metadata(ingest)
    names = _requirement_names(requires)
    assert names.isdisjoint({"ironlink-agent", "pymodbus", "pyserial"}), requires
    assert {"ironlink-contract", "ironlink-service"} <= names, requires
    assert "ironlink-ingest = ironlink_ingest.cli:main" in _entry_points(ingest)
    assert not [f for f in ingest.namelist() if f.startswith("ironlink_agent/")]


def test_contract_depends_on_nothing_and_ships_its_schema(wheels):
    contract = wheels["ironlink_contract"]
    _, requires = _metadata(contract)
    assert [r for r in requires if "extra ==" not in r] == []
    assert "ironlink_contract/schema/telemetry-v1.json" in contract.namelist()


def test_internal_pins_match_the_versions_built(wheels):
    versions = {name.replace("_", "-"): _metadata(w)[0] for name, w in wheels.items()}
    for name, wheel in wheels.items():
        for req in _metadata(wheel)[1]:
            dep = _requirement_names([req]).pop()
            if dep in versions:
                assert req.replace(" ", "") == f"{dep}=={versions[dep]}", f"{name}: {req}"


@pytest.mark.parametrize("name", list(DISTS))
def test_every_wheel_is_typed_and_licensed(wheels, name):
    files = wheels[name].namelist()
    assert f"{name}/py.typed" in files
    assert any(re.search(r"\.dist-info/licenses/LICENSE$", f) for f in files), files
    version, _ = _metadata(wheels[name])
    module = __import__(name)
    if hasattr(module, "__version__"):
        assert module.__version__ == version


def test_runtime_pins_equal_the_dev_requirements(wheels):
    """The venv the tests run in (requirements-dev.txt) has the versions the wheels pin."""
    dev = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            dev[re.sub(r"\[.*\]", "", name).lower()] = version
    for name, wheel in wheels.items():
        for req in _metadata(wheel)[1]:
            dep = _requirement_names([req]).pop()
            pinned = re.search(r"==\s*([^\s;,]+)", req)
            if dep in dev and pinned and "extra ==" not in req:
                assert pinned.group(1) == dev[dep], f"{name} pins {req}, requirements-dev.txt {dev[dep]}"
