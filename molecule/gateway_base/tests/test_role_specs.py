"""meta/argument_specs.yml mirrors defaults/main.yml key for key (the prometheus-community CI check)."""

from __future__ import annotations

import pytest
import yaml
from conftest import PROJECT_DIR

ROLES = ("gateway_identity", "gateway_base", "gateway_ssh")


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_mirror_defaults(role):
    role_dir = PROJECT_DIR / "roles" / role
    defaults = yaml.safe_load((role_dir / "defaults/main.yml").read_text()) or {}
    options = yaml.safe_load((role_dir / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    optional = {name for name, spec in options.items() if not spec.get("required", False)}
    assert set(defaults) == optional, "defaults and optional argument_specs options differ"
    for name in optional:
        assert options[name].get("default") == defaults[name], name
        assert options[name].get("type"), name
        assert options[name].get("description"), name
    for name, spec in options.items():
        assert name.startswith(f"{role}_"), name
        if spec.get("required"):
            assert "default" not in spec and name not in defaults, name
