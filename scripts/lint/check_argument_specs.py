#!/usr/bin/env python3
"""Check that every role's meta/argument_specs.yml mirrors its defaults, key for key.

For each ``roles/<name>/``:

- ``meta/argument_specs.yml`` (or ``.yaml``) exists and has an ``argument_specs.main`` entry point;
- its options and ``defaults/main.yml`` (or ``main.yaml``, or the files of ``defaults/main/``) have
  the same keys, both directions. An option marked ``required: true`` is the exception: it must
  *not* have a default (a default would make the requirement impossible to fail), so a role without
  defaults is fine when all its options are required;
- every option, sub-options included, has a ``type`` and a non-empty ``description``.

Usage: scripts/lint/check_argument_specs.py [ROLES_DIR ...]   (default: roles/ of the repository)
Exit status: 0 when every role passes, 1 when there are problems (listed per role), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from ansible_yaml import load as _load

REPO_ROOT = Path(__file__).resolve().parents[2]


def _first(*paths: Path) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _load_defaults(role: Path) -> tuple[dict[str, Any], list[str], str]:
    """Return (defaults, problems, description of where they came from)."""
    problems: list[str] = []
    single = _first(role / "defaults" / "main.yml", role / "defaults" / "main.yaml")
    files = [single] if single else sorted((role / "defaults" / "main").glob("*.y*ml"))
    defaults: dict[str, Any] = {}
    for path in files:
        try:
            data = _load(path)
        except yaml.YAMLError as exc:
            problems.append(f"{path.relative_to(role)}: not valid YAML: {exc}")
            continue
        if data is None:
            continue
        if not isinstance(data, dict):
            kind = type(data).__name__
            problems.append(f"{path.relative_to(role)}: expected a mapping of variables, got {kind}")
            continue
        defaults.update(data)
    where = str(files[0].relative_to(role)) if len(files) == 1 else "defaults/main/" if files else "defaults"
    return defaults, problems, where


def _check_options(options: Any, prefix: str) -> list[str]:
    """Every option (recursively through sub-options) needs a type and a description."""
    if options is None:
        return []
    if not isinstance(options, dict):
        return [f"{prefix or 'options'}: expected a mapping of options, got {type(options).__name__}"]
    problems = []
    for name, spec in options.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        if not isinstance(spec, dict):
            problems.append(f"option {path}: expected a mapping, got {type(spec).__name__}")
            continue
        if "type" not in spec:
            problems.append(f"option {path}: no type")
        description = spec.get("description")
        if not description or (isinstance(description, list) and not any(description)):
            problems.append(f"option {path}: no description")
        problems.extend(_check_options(spec.get("options"), path))
    return problems


def check_role(role: Path) -> list[str]:
    """All problems of one role, as readable lines (empty: the role passes)."""
    spec_path = _first(role / "meta" / "argument_specs.yml", role / "meta" / "argument_specs.yaml")
    if spec_path is None:
        return ["meta/argument_specs.yml is missing"]
    spec_name = str(spec_path.relative_to(role))
    try:
        spec = _load(spec_path)
    except yaml.YAMLError as exc:
        return [f"{spec_name}: not valid YAML: {exc}"]
    main = (spec or {}).get("argument_specs", {}).get("main") if isinstance(spec, dict) else None
    if not isinstance(main, dict):
        return [f"{spec_name}: no argument_specs.main entry point"]
    options = main.get("options") or {}
    problems = _check_options(options, "")
    if not isinstance(options, dict):
        return problems

    defaults, default_problems, defaults_name = _load_defaults(role)
    problems.extend(default_problems)
    for name in sorted(set(defaults) - set(options), key=str):
        problems.append(f"{name}: in {defaults_name} but not an option in {spec_name}")
    for name in sorted(set(options) - set(defaults), key=str):
        if not (isinstance(options[name], dict) and options[name].get("required")):
            problems.append(
                f"{name}: an option in {spec_name} but not in {defaults_name} "
                "(add a default, or mark it required)"
            )
    for name in sorted(set(options) & set(defaults), key=str):
        if isinstance(options[name], dict) and options[name].get("required"):
            problems.append(
                f"{name}: required in {spec_name} but has a default in {defaults_name}, "
                "so it can never be missing"
            )
    return problems


def roles_in(roles_dirs: Iterable[Path]) -> list[Path]:
    return sorted(p for d in roles_dirs for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "roles_dirs", nargs="*", type=Path, default=[REPO_ROOT / "roles"], metavar="ROLES_DIR"
    )
    args = parser.parse_args(argv)
    for directory in args.roles_dirs:
        if not directory.is_dir():
            parser.error(f"{directory} is not a directory")

    roles = roles_in(args.roles_dirs)
    failed = 0
    for role in roles:
        problems = check_role(role)
        if problems:
            failed += 1
            print(f"{role}:")
            for problem in problems:
                print(f"  - {problem}")
    if failed:
        print(f"check_argument_specs: {failed} of {len(roles)} role(s) have problems")
        return 1
    print(f"check_argument_specs: {len(roles)} role(s) OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
