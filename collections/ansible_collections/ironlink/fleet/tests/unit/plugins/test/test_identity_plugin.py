# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ironlink.fleet.identity test and the identity_rule filter: the module_utils rules, exposed to roles."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ironlink.fleet.plugins.filter.identity_rule import FilterModule, identity_rule
from ansible_collections.ironlink.fleet.plugins.module_utils import _identity
from ansible_collections.ironlink.fleet.plugins.test import identity as identity_test
from ansible_collections.ironlink.fleet.plugins.test.identity import identity


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("client_id", "ZAM-WELD", True),
        ("client_id", "zam-weld", False),
        ("client_id", "ZAM-WELD\n", False),  # fullmatch: no trailing newline through $
        ("client_id", "-ZAM", False),
        ("client_id", "A" * 32, True),
        ("client_id", "A" * 33, False),
        ("client_id", 7, False),
        ("client_id", None, False),
        ("site_id", "SITE-A", True),
        ("site_id", "SITE_A", False),
        ("gateway_id", "GW-01", True),
        ("gateway_id", "", False),
        ("environment", "prod", True),
        ("environment", "production", False),
        ("hostname", "zam-weld-site-a-gw-01", True),
        ("hostname", "Zam-Weld", False),
        ("hostname", "a" * 64, False),
        ("hostname", "gw.example", False),
        ("gateway_name", "ZAM-WELD/SITE-A/GW-01", True),
        ("gateway_name", "ZAM-WELD/SITE-A", False),
        ("gateway_name", "ZAM-WELD/SITE-A/GW-01/X", False),
        ("gateway_name", "ZAM-WELD/site-a/GW-01", False),
        ("gateway_name", "ZAM-WELD//GW-01", False),
        ("gateway_name", "ZAM-WELD/SITE-A/GW-01\n", False),
        ("gateway_name", ["ZAM-WELD", "SITE-A", "GW-01"], False),
    ],
)
def test_identity_applies_the_collection_rule(field, value, valid):
    assert identity(value, field) is valid


@pytest.mark.parametrize("field", _identity.FIELDS)
def test_identity_agrees_with_field_error(field):
    # The test is field_error seen as a boolean, for every sample value of the other fields too.
    samples = ["ZAM-WELD", "SITE-A", "GW-01", "prod", "zam-weld-site-a-gw-01", "bad value", "", None]
    for value in samples:
        assert identity(value, field) is (_identity.field_error(field, value) is None)


def test_identity_rejects_an_unknown_field():
    with pytest.raises(AnsibleFilterError, match="unknown field 'gatway_id'"):
        identity("GW-01", "gatway_id")


def test_identity_rule_describes_each_kind():
    for kind in _identity.KINDS:
        assert identity_rule(kind) == _identity.expected(kind)
    assert "CLIENT/SITE/GATEWAY" in identity_rule("gateway_name")
    assert "'GW-01'" in identity_rule("gateway_id")


def test_identity_rule_rejects_an_unknown_field():
    with pytest.raises(AnsibleFilterError, match="unknown field"):
        identity_rule("site")


def test_plugins_are_registered_under_their_names():
    # Reached through the module: pytest would collect a class named Test* imported here.
    assert identity_test.TestModule().tests() == {"identity": identity}
    assert FilterModule().filters() == {"identity_rule": identity_rule}
