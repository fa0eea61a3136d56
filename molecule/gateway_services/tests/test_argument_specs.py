"""meta/argument_specs.yml mirrors defaults/main.yml key for key, defaults included, in the three roles."""

import os
import pathlib

import pytest
import yaml

ROLES = (
    pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).parents[3])) / "roles"
)


@pytest.mark.parametrize("role", ["gateway_firewall", "gateway_host_services", "gateway_docker"])
def test_argument_specs_mirror_defaults(role):
    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    options = yaml.safe_load((ROLES / role / "meta/argument_specs.yml").read_text())["argument_specs"][
        "main"
    ]["options"]
    assert list(options) == list(defaults)
    for name, spec in options.items():
        assert spec.get("description"), name
        assert spec.get("type"), name
        assert spec.get("default") == defaults[name], name
