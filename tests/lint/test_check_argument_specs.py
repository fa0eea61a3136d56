"""scripts/lint/check_argument_specs.py on small fixture roles written to a temp dir."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lint" / "check_argument_specs.py"
_spec = importlib.util.spec_from_file_location("check_argument_specs", SCRIPT)
cas = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cas)

GOOD_SPEC = """
    ---
    argument_specs:
      main:
        short_description: Demo
        options:
          demo_port:
            type: int
            default: 1883
            description: TCP port.
          demo_users:
            type: list
            elements: dict
            default: []
            description:
              - Users.
            options:
              name:
                type: str
                required: true
                description: User name.
"""

GOOD_DEFAULTS = """
    ---
    demo_port: 1883
    demo_users: []
"""


def make_role(root: Path, name: str, spec: str | None = GOOD_SPEC, defaults: str | None = GOOD_DEFAULTS):
    role = root / name
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text("---\n[]\n")
    if spec is not None:
        (role / "meta").mkdir()
        (role / "meta" / "argument_specs.yml").write_text(textwrap.dedent(spec))
    if defaults is not None:
        (role / "defaults").mkdir()
        (role / "defaults" / "main.yml").write_text(textwrap.dedent(defaults))
    return role


def test_good_role_passes(tmp_path):
    assert cas.check_role(make_role(tmp_path, "demo")) == []


def test_missing_spec(tmp_path):
    assert cas.check_role(make_role(tmp_path, "demo", spec=None)) == ["meta/argument_specs.yml is missing"]


def test_no_main_entry_point(tmp_path):
    role = make_role(tmp_path, "demo", spec="argument_specs:\n  other:\n    options: {}\n")
    assert cas.check_role(role) == ["meta/argument_specs.yml: no argument_specs.main entry point"]


def test_differences_both_directions(tmp_path):
    defaults = GOOD_DEFAULTS + "    demo_extra: 1\n"
    spec = GOOD_SPEC.replace(
        "          demo_port:",
        "          demo_only_in_spec:\n            type: str\n"
        "            description: x\n          demo_port:",
    )
    problems = cas.check_role(make_role(tmp_path, "demo", spec=spec, defaults=defaults))
    assert problems == [
        "demo_extra: in defaults/main.yml but not an option in meta/argument_specs.yml",
        "demo_only_in_spec: an option in meta/argument_specs.yml but not in defaults/main.yml "
        "(add a default, or mark it required)",
    ]


def test_type_and_description_required_including_suboptions(tmp_path):
    spec = GOOD_SPEC.replace("            type: int\n", "")
    spec = spec.replace("                description: User name.\n", "")
    problems = cas.check_role(make_role(tmp_path, "demo", spec=spec))
    assert problems == ["option demo_port: no type", "option demo_users.name: no description"]


@pytest.mark.parametrize("description", ['""', "[]", "null"])
def test_empty_description_counts_as_missing(tmp_path, description):
    spec = GOOD_SPEC.replace("description: TCP port.", f"description: {description}")
    assert cas.check_role(make_role(tmp_path, "demo", spec=spec)) == ["option demo_port: no description"]


def test_role_without_defaults_is_fine_with_only_required_options(tmp_path):
    spec = """
        argument_specs:
          main:
            options:
              demo_token:
                type: str
                required: true
                no_log: true
                description: API token.
    """
    assert cas.check_role(make_role(tmp_path, "demo", spec=spec, defaults=None)) == []


def test_role_without_defaults_fails_with_optional_options(tmp_path):
    problems = cas.check_role(make_role(tmp_path, "demo", defaults=None))
    assert problems == [
        "demo_port: an option in meta/argument_specs.yml but not in defaults "
        "(add a default, or mark it required)",
        "demo_users: an option in meta/argument_specs.yml but not in defaults "
        "(add a default, or mark it required)",
    ]


def test_required_option_with_default_is_reported(tmp_path):
    spec = GOOD_SPEC.replace("            default: 1883\n", "            required: true\n")
    problems = cas.check_role(make_role(tmp_path, "demo", spec=spec))
    assert problems == [
        "demo_port: required in meta/argument_specs.yml but has a default in defaults/main.yml, "
        "so it can never be missing"
    ]


def test_vault_tags_and_defaults_directory(tmp_path):
    role = make_role(tmp_path, "demo", defaults=None)
    (role / "defaults" / "main").mkdir(parents=True)
    (role / "defaults" / "main" / "a.yml").write_text("demo_port: !unsafe '{{ 1883 }}'\n")
    (role / "defaults" / "main" / "b.yml").write_text(
        "demo_users: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3132\n"
    )
    assert cas.check_role(role) == []


def test_empty_spec_and_empty_defaults(tmp_path):
    spec = "argument_specs:\n  main:\n    short_description: x\n"
    role = make_role(tmp_path, "demo", spec=spec, defaults="---\n")
    assert cas.check_role(role) == []


def test_cli_report_and_exit_status(tmp_path):
    make_role(tmp_path, "good")
    make_role(tmp_path, "bad", defaults=GOOD_DEFAULTS + "    demo_extra: 1\n")
    make_role(tmp_path, "nospec", spec=None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert proc.stdout == (
        f"{tmp_path / 'bad'}:\n"
        "  - demo_extra: in defaults/main.yml but not an option in meta/argument_specs.yml\n"
        f"{tmp_path / 'nospec'}:\n"
        "  - meta/argument_specs.yml is missing\n"
        "check_argument_specs: 2 of 3 role(s) have problems\n"
    )


def test_cli_passes_on_good_roles(tmp_path):
    make_role(tmp_path, "good")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, "check_argument_specs: 1 role(s) OK\n")
