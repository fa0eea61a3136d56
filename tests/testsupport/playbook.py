# SPDX-License-Identifier: Apache-2.0
"""The one way tests run ``ansible-playbook`` (and ad-hoc ``ansible``): repo tests and Molecule verifiers.

Every run starts in the project root, takes the ansible binaries of the running interpreter's venv, finds the
project's roles and collections, and never sees an ``IRONLINK_*`` variable of the caller's shell: the identity
check reads those as fallbacks, so a developer's exported value would change what a test proves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROJECT_CONFIG = PROJECT_DIR / "ansible.cfg"

StrPath = str | os.PathLike[str]


def molecule_inventory() -> Path:
    """The inventory directory of the Molecule scenario under test (generated inventory, hosts, group_vars).

    Only a Molecule verifier has one; anywhere else this fails rather than skip, so a test that needs the
    scenario's hosts can never pass without them.
    """
    try:
        return Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    except KeyError:
        message = "MOLECULE_INVENTORY_FILE is not set: run this test through `molecule verify`"
        raise AssertionError(message) from None


def _binary(program: str) -> str:
    beside = Path(sys.executable).with_name(program)
    if beside.is_file():
        return str(beside)
    found = shutil.which(program)
    if found is None:
        raise AssertionError(f"{program} not found beside {sys.executable} nor on PATH")
    return found


def ansible_env(config: StrPath | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: the caller's without ``IRONLINK_*``, the project's roles and collections.

    ``config`` is the ``ansible.cfg`` to use; by default the one already in the environment (Molecule's
    generated config inside a verifier), else the project's.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("IRONLINK_")}
    env.setdefault("ANSIBLE_ROLES_PATH", str(PROJECT_DIR / "roles"))
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(PROJECT_DIR / "collections"))
    if config is not None:
        env["ANSIBLE_CONFIG"] = str(config)
    else:
        env.setdefault("ANSIBLE_CONFIG", str(PROJECT_CONFIG))
    # Plain text, one format: tests search the output for the messages operators read.
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_STDOUT_CALLBACK"] = "default"
    env.update(extra or {})
    return env


def run_ansible(
    program: str,
    *args: StrPath,
    inventory: StrPath | Sequence[StrPath] | None = None,
    config: StrPath | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``program`` (``ansible-playbook`` or ``ansible``) from the project root and return its result.

    ``inventory``: one source or several (each becomes ``-i``); by default the Molecule scenario's inventory.
    ``env``: variables added to :func:`ansible_env`. With ``check=True`` a non-zero exit fails the test with
    the end of the output.
    """
    if inventory is None:
        sources: Sequence[StrPath] = [molecule_inventory()]
    elif isinstance(inventory, str | os.PathLike):
        sources = [inventory]
    else:
        sources = inventory
    command = [_binary(program)]
    for source in sources:
        command += ["-i", str(source)]
    command += [str(arg) for arg in args]
    result = subprocess.run(
        command,
        cwd=PROJECT_DIR,
        env=ansible_env(config, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        tail = f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{tail}")
    return result


def ansible_playbook(
    playbook: StrPath,
    *args: StrPath,
    inventory: StrPath | Sequence[StrPath] | None = None,
    config: StrPath | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook [-i inventory ...] playbook args...``; see :func:`run_ansible`."""
    return run_ansible(
        "ansible-playbook",
        playbook,
        *args,
        inventory=inventory,
        config=config,
        env=env,
        timeout=timeout,
        check=check,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr of a run, whitespace folded: Ansible wraps long messages at arbitrary points."""
    return " ".join((result.stdout + result.stderr).split())
