# SPDX-License-Identifier: GPL-3.0-or-later
"""What a user outside this repository installs stays true to what the Ansible content uses.

- Every collection named by FQCN in the roles, playbooks and inventories (modules, filters, tests,
  lookups, connections) is a dependency in the ironlink.fleet galaxy.yml and an entry of the root
  requirements.yml, with the same version range, which the version the pinned ansible bundles satisfies.
- Molecule scenarios use only those, or the test-only collections named below with the reason.
- Every plugin of ironlink.fleet has a version_added no newer than the collection's version, and the
  collection's CHANGELOG.md names its file under that version's heading.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements
from ansible.utils.version import SemanticVersion

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = ROOT / "collections/ansible_collections/ironlink/fleet"
USER_CONTENT = ("roles", "playbooks", "inventories")
# Collections that are part of ansible-core or are this repository's own.
BUILT_IN = {"ansible.builtin", "ironlink.fleet"}
# Used only by the test scaffolding, never by what a user runs: the reason is the value.
TEST_ONLY = {
    "containers.podman": "Molecule reaches its podman hosts with the containers.podman.podman connection",
}

_NAME = r"([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*"
# The places a collection is named by FQCN in YAML and Jinja: a task's module key, a filter after "|", a test
# after "is", a test or filter by name in select/reject/map, a lookup, and a connection plugin.
FQCN_PATTERNS = [
    re.compile(r"^\s*(?:-\s+)?" + _NAME + r":", re.MULTILINE),
    re.compile(r"\|\s*" + _NAME),
    re.compile(r"\bis\s+(?:not\s+)?" + _NAME),
    re.compile(
        r"\b(?:select|reject|selectattr|rejectattr|map)\(\s*(?:['\"][^'\"]*['\"]\s*,\s*)?['\"]" + _NAME
    ),
    re.compile(r"\b(?:lookup|query|q)\(\s*['\"]" + _NAME),
    re.compile(r"\b(?:ansible_)?connection:\s*['\"]?" + _NAME),
]


def collections_used(text: str) -> set[str]:
    """namespace.collection of every FQCN ``text`` uses (YAML or Jinja)."""
    return {match.group(1) for pattern in FQCN_PATTERNS for match in pattern.finditer(text)}


def content_files(*tops: str) -> list[Path]:
    return sorted(
        path
        for top in tops
        for path in (ROOT / top).rglob("*")
        if path.is_file() and path.suffix in {".yml", ".yaml", ".j2"}
    )


def used_by(*tops: str) -> dict[str, list[str]]:
    """namespace.collection -> the files using it, for the files under ``tops``."""
    found: dict[str, list[str]] = {}
    for path in content_files(*tops):
        for name in collections_used(path.read_text(encoding="utf-8")):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def galaxy() -> dict:
    return yaml.safe_load((COLLECTION / "galaxy.yml").read_text())


def requirements() -> dict[str, str]:
    entries = yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]
    return {entry["name"]: entry["version"] for entry in entries}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- name: X\n  community.crypto.x509_certificate:\n    path: x\n", {"community.crypto"}),
        ("    ansible.posix.authorized_key:\n", {"ansible.posix"}),
        ("x: \"{{ a | community.general.json_query('b') }}\"", {"community.general"}),
        ("that: x is not ansible.utils.ipv4", {"ansible.utils"}),
        ("{{ d.keys() | select('ironlink.fleet.identity', 'client_id') }}", {"ironlink.fleet"}),
        ("{{ lookup('community.hashi_vault.hashi_vault', 'x') }}", {"community.hashi_vault"}),
        ("ansible_connection: containers.podman.podman", {"containers.podman"}),
        # Not FQCNs: a hostname, an attribute path, a file name.
        ("servers: [ntp1.acme.example]\nwhen: __x.stat.exists\nsrc: ironlink.acl.j2", set()),
    ],
)
def test_fqcn_extraction(text, expected):
    assert collections_used(text) == expected


def test_every_collection_the_content_uses_is_declared():
    declared = set(galaxy()["dependencies"])
    listed = set(requirements())
    used = used_by(*USER_CONTENT)
    assert "community.crypto" in used  # the scan sees the roles at all
    missing = {
        name: files
        for name, files in used.items()
        if name not in BUILT_IN and name not in (declared & listed)
    }
    assert not missing, f"declare these in galaxy.yml dependencies and requirements.yml: {missing}"


def test_nothing_is_declared_that_the_content_does_not_use():
    used = set(used_by(*USER_CONTENT))
    assert set(galaxy()["dependencies"]) - used == set()
    assert set(requirements()) - used == set()


def test_galaxy_and_requirements_agree():
    assert galaxy()["dependencies"] == requirements()


def test_molecule_uses_only_declared_or_test_only_collections():
    allowed = set(requirements()) | BUILT_IN | set(TEST_ONLY)
    extra = {name: files for name, files in used_by("molecule").items() if name not in allowed}
    assert not extra, f"name these in requirements.yml, or in TEST_ONLY with the reason: {extra}"


@pytest.mark.parametrize("name", sorted(requirements()))
def test_pinned_ansible_bundles_a_version_in_range(name):
    namespace, collection = name.split(".")
    spec = importlib.util.find_spec(f"ansible_collections.{namespace}.{collection}")
    assert spec is not None and spec.submodule_search_locations, (
        f"{name} is not installed in this environment"
    )
    manifest = Path(next(iter(spec.submodule_search_locations))) / "MANIFEST.json"
    version = json.loads(manifest.read_text())["collection_info"]["version"]
    assert meets_requirements(version, requirements()[name]), (name, version, requirements()[name])


# --- plugins, version_added and the changelog ---------------------------------------------------------------

PLUGIN_DIRS = ("modules", "action", "filter", "test", "lookup", "callback", "inventory")


def plugin_files() -> list[Path]:
    return sorted(
        path
        for kind in PLUGIN_DIRS
        for path in (COLLECTION / "plugins" / kind).glob("*.py")
        if path.name != "__init__.py"
    )


def documentation(path: Path) -> dict | None:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "DOCUMENTATION" for t in node.targets
        ):
            return yaml.safe_load(ast.literal_eval(node.value))
    return None


def version_added(path: Path) -> str:
    doc = documentation(path)
    if doc is None and path.parent.name == "action":
        # An action plugin is documented by the module of the same name.
        doc = documentation(COLLECTION / "plugins/modules" / path.name)
    assert doc is not None, f"{path.relative_to(COLLECTION)} has no DOCUMENTATION"
    return str(doc["version_added"])


def changelog_sections() -> dict[str, str]:
    """Version -> the text of its section in CHANGELOG.md."""
    text = (COLLECTION / "CHANGELOG.md").read_text()
    parts = re.split(r"^## (\S+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_collection_has_plugins():
    names = {p.relative_to(COLLECTION / "plugins").as_posix() for p in plugin_files()}
    assert {"modules/identity_check.py", "test/identity.py", "filter/storage_accounts.py"} <= names


@pytest.mark.parametrize(
    "path", plugin_files(), ids=lambda p: p.relative_to(COLLECTION / "plugins").as_posix()
)
def test_plugin_version_and_changelog(path):
    collection_version = SemanticVersion(str(galaxy()["version"]))
    added = version_added(path)
    assert SemanticVersion(added) <= collection_version, (
        f"version_added {added} > galaxy.yml {collection_version}"
    )
    sections = changelog_sections()
    assert added in sections, f"CHANGELOG.md has no section for {added}"
    relative = path.relative_to(COLLECTION).as_posix()
    assert relative in sections[added], f"CHANGELOG.md section {added} does not mention {relative}"


def test_changelog_starts_with_the_collection_version():
    assert next(iter(changelog_sections())) == str(galaxy()["version"])
