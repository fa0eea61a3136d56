# SPDX-License-Identifier: GPL-3.0-or-later
"""Read Ansible YAML (roles, specs, tasks) for the lint scripts beside this file: safe, tags tolerated.

The scripts import it as a sibling module (Python puts a script's folder first on ``sys.path``; ``pytest.ini``
adds this folder for their tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader that accepts Ansible's tags (!vault, !unsafe...) and keeps the keys."""


def _any_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_Loader.add_multi_constructor("!", _any_tag)


def load(path: Path) -> Any:
    """The document in ``path`` with Ansible's tags read as their plain values."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
