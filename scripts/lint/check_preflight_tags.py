#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check that a narrow ``--tags`` run can never skip a role's preflight (its safety checks).

For each ``roles/<name>/`` with a ``tasks/`` folder:

- ``tasks/main.yml`` starts with the preflight: a static ``import_tasks`` of ``preflight.yml``. Static,
  because the tags of an ``include_tasks`` select the include only, not the tasks it brings in; first, because
  a check that runs after a change protects nothing;
- that import carries every tag used anywhere in the role's task files (``tasks/**/*.yml``, blocks included),
  or ``always``. So ``--tags <role>_configure`` runs the preflight before it configures anything, as
  prometheus-community's ``node_exporter/tasks/main.yml`` does. Listing the tags is preferred over ``always``:
  ``always`` would also run the preflight of every *other* role of a playbook on an unrelated ``--tags`` run.

``always`` and ``never`` are Ansible's special tags, not tags of the role, and are not required.

Usage: scripts/lint/check_preflight_tags.py [ROLES_DIR ...]   (default: roles/ of the repository)
Exit status: 0 when every role passes, 1 when there are problems (listed per role), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from ansible_yaml import load as _load

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECIAL_TAGS = frozenset({"always", "never"})
IMPORT_KEYS = ("ansible.builtin.import_tasks", "ansible.legacy.import_tasks", "import_tasks")
INCLUDE_KEYS = ("ansible.builtin.include_tasks", "ansible.legacy.include_tasks", "include_tasks")
BLOCK_KEYS = ("block", "rescue", "always")


def _tags(task: dict[str, Any]) -> set[str]:
    raw = task.get("tags", [])
    if isinstance(raw, str):
        # Ansible accepts "a,b" as well as a list.
        return {part.strip() for part in raw.split(",") if part.strip()}
    return {str(tag) for tag in raw or []}


def _walk(tasks: Any) -> Iterator[dict[str, Any]]:
    """Every task of a task list and of its blocks (the blocks themselves too: they carry tags)."""
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in BLOCK_KEYS:
            if isinstance(task.get(key), list):
                yield from _walk(task[key])


def _target(task: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in task:
            value = task[key]
            if isinstance(value, dict):
                value = value.get("file")
            return str(value) if value is not None else ""
    return None


def _is_preflight(file: str | None) -> bool:
    return file is not None and Path(file).stem == "preflight"


def check_role(role: Path) -> list[str]:
    """Return the problems of one role (empty when its preflight runs under every tag it uses)."""
    main = role / "tasks" / "main.yml"
    if not main.is_file():
        return [f"{main.relative_to(role.parent)} is missing"]
    role_tags: dict[str, str] = {}
    problems: list[str] = []
    for path in sorted((role / "tasks").rglob("*.y*ml")):
        try:
            tasks = _load(path)
        except yaml.YAMLError as exc:
            problems.append(f"{path.relative_to(role)}: not valid YAML: {exc}")
            continue
        for task in _walk(tasks):
            for tag in sorted(_tags(task) - SPECIAL_TAGS):
                role_tags.setdefault(tag, str(path.relative_to(role)))
    tasks = _load(main) or []
    entries = [task for task in tasks if isinstance(task, dict)]
    preflight = next(
        (task for task in entries if _is_preflight(_target(task, IMPORT_KEYS + INCLUDE_KEYS))),
        None,
    )
    if preflight is None:
        return [*problems, "tasks/main.yml does not import preflight.yml"]
    if _target(preflight, IMPORT_KEYS) is None:
        problems.append(
            "the preflight is included (include_tasks), not imported: an include's tags do not reach "
            "the tasks it brings in; use ansible.builtin.import_tasks"
        )
    if entries[0] is not preflight:
        problems.append(
            f"the preflight is not the first task of tasks/main.yml ({entries[0].get('name')!r} is)"
        )
    carried = _tags(preflight)
    if "always" not in carried:
        for tag, where in sorted(role_tags.items()):
            if tag not in carried:
                problems.append(f"--tags {tag} ({where}) skips the preflight: add {tag} to its tags")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roles_dirs", nargs="*", type=Path, default=[REPO_ROOT / "roles"])
    args = parser.parse_args(argv)
    roles = []
    for roles_dir in args.roles_dirs:
        if not roles_dir.is_dir():
            parser.error(f"not a directory: {roles_dir}")
        roles += sorted(p for p in roles_dir.iterdir() if (p / "tasks").is_dir())
    if not roles:
        parser.error(f"no role with a tasks/ folder in {', '.join(map(str, args.roles_dirs))}")
    failed = 0
    for role in roles:
        problems = check_role(role)
        if problems:
            failed += 1
            print(f"{role.name}:")
            for problem in problems:
                print(f"  - {problem}")
    print(f"check_preflight_tags: {len(roles) - failed} of {len(roles)} roles pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
