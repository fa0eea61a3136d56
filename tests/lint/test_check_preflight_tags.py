# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/lint/check_preflight_tags.py on the real roles and on small bad roles written to a temp dir."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "lint" / "check_preflight_tags.py"

GOOD_MAIN = """
    ---
    - name: Preflight
      ansible.builtin.import_tasks: preflight.yml
      tags: [demo, demo_install, demo_configure]

    - name: Install
      ansible.builtin.import_tasks: install.yml
      tags: [demo, demo_install]

    - name: Configure
      ansible.builtin.import_tasks:
        file: configure.yml
      tags:
        - demo
        - demo_configure
"""
PREFLIGHT = """
    ---
    - name: Check the variables
      ansible.builtin.assert:
        that: demo_port | int > 0
"""
INSTALL = """
    ---
    - name: Install the package
      ansible.builtin.apt:
        name: demo
"""


def make_role(root: Path, main: str = GOOD_MAIN, **extra_files: str) -> Path:
    """A role named ``demo`` under ``root``; ``extra_files`` maps task file stems to their text."""
    tasks = root / "demo" / "tasks"
    tasks.mkdir(parents=True)
    files = {"main": main, "preflight": PREFLIGHT, "install": INSTALL, "configure": INSTALL, **extra_files}
    for stem, text in files.items():
        (tasks / f"{stem}.yml").write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def run(*roles_dirs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, roles_dirs)], capture_output=True, text=True, check=False
    )


def test_every_role_of_the_repository_passes() -> None:
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    roles = sorted(p.name for p in (REPO_ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
    assert f"{len(roles)} of {len(roles)} roles pass" in result.stdout


def test_a_good_role_passes(tmp_path: Path) -> None:
    result = run(make_role(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "1 of 1 roles pass" in result.stdout


def test_always_on_the_preflight_passes(tmp_path: Path) -> None:
    main = GOOD_MAIN.replace("tags: [demo, demo_install, demo_configure]", "tags: [always]")
    result = run(make_role(tmp_path, main))
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("main", "extra", "expected"),
    [
        pytest.param(
            # The bug of issue 8: the preflight tagged with the role name only.
            GOOD_MAIN.replace("tags: [demo, demo_install, demo_configure]", "tags: [demo]"),
            {},
            ["--tags demo_configure (tasks/main.yml) skips the preflight", "--tags demo_install"],
            id="role-name-only",
        ),
        pytest.param(
            GOOD_MAIN,
            # A tag used only deep inside a task file, in a block's rescue.
            {
                "configure": """
                    ---
                    - name: Write the configuration
                      block:
                        - name: Template
                          ansible.builtin.template: {src: a.j2, dest: /etc/a}
                      rescue:
                        - name: Report
                          ansible.builtin.debug: {msg: failed}
                          tags: demo_debug
                """
            },
            ["--tags demo_debug (tasks/configure.yml) skips the preflight"],
            id="tag-inside-a-block",
        ),
        pytest.param(
            GOOD_MAIN.replace(
                "ansible.builtin.import_tasks: preflight.yml", "ansible.builtin.include_tasks: preflight.yml"
            ),
            {},
            ["the preflight is included (include_tasks), not imported"],
            id="dynamic-include",
        ),
        pytest.param(
            textwrap.dedent(GOOD_MAIN).replace(
                "---\n", "---\n- name: Too early\n  ansible.builtin.debug: {msg: x}\n\n", 1
            ),
            {},
            ["the preflight is not the first task of tasks/main.yml ('Too early' is)"],
            id="not-first",
        ),
        pytest.param(
            """
                ---
                - name: Install
                  ansible.builtin.import_tasks: install.yml
                  tags: [demo, demo_install]
            """,
            {},
            ["tasks/main.yml does not import preflight.yml"],
            id="no-preflight",
        ),
    ],
)
def test_a_bad_role_fails(tmp_path: Path, main: str, extra: dict[str, str], expected: list[str]) -> None:
    result = run(make_role(tmp_path, main, **extra))
    assert result.returncode == 1, result.stdout
    assert "demo:" in result.stdout
    for text in expected:
        assert text in result.stdout
    assert "0 of 1 roles pass" in result.stdout


def test_special_tags_are_not_required(tmp_path: Path) -> None:
    # `never` makes a task run only when another of its tags is asked for: not a tag the preflight needs.
    configure = INSTALL + "      tags: [never, demo_configure]\n"
    result = run(make_role(tmp_path, configure=configure))
    assert result.returncode == 0, result.stdout


def test_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = run(tmp_path / "absent")
    assert result.returncode == 2
    assert "not a directory" in result.stderr
