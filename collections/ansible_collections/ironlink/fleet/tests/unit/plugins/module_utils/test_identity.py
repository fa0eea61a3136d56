# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import re

import pytest
from ansible_collections.ironlink.fleet.plugins.module_utils import _identity as identity

GOOD = {
    "client_id": "ZAM-WELD",
    "site_id": "SITE-A",
    "gateway_id": "GW-01",
    "environment": "prod",
    "hostname": "zam-weld-site-a-gw-01",
}


def with_(**changes):
    return {**GOOD, **changes}


def test_constants_are_the_documented_ones():
    # The edge agent keeps a copy of these three; its test compares against this module.
    assert identity.ID_PATTERN == r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$"
    assert identity.HOSTNAME_PATTERN == r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
    assert identity.ENVIRONMENTS == ("dev", "staging", "prod")
    re.compile(identity.ID_PATTERN)
    re.compile(identity.HOSTNAME_PATTERN)


def test_good_identity_has_no_errors():
    assert identity.validate_identity(GOOD) == []


@pytest.mark.parametrize("field", ["client_id", "site_id", "gateway_id"])
@pytest.mark.parametrize(
    "value", ["A", "7", "GW-01", "ZAM-WELD", "SITE-A", "A-B-C", "GW--01", "A" * 32, "0" * 32]
)
def test_good_ids(field, value):
    assert identity.validate_identity(with_(**{field: value})) == []


@pytest.mark.parametrize("field", ["client_id", "site_id", "gateway_id"])
@pytest.mark.parametrize(
    "value",
    [
        "gw-01",  # lower case
        "Gw-01",  # mixed case
        "-GW01",  # leading dash
        "GW01-",  # trailing dash
        "-",
        "GW_01",  # underscore
        "GW 01",  # space
        " GW-01",  # not stripped
        "GW-01\n",  # trailing newline ($ alone would accept it)
        "A" * 33,  # too long
        "ÄBC",  # non-ASCII
        "GW.01",
    ],
)
def test_bad_ids(field, value):
    errors = identity.validate_identity(with_(**{field: value}))
    assert len(errors) == 1
    assert errors[0].startswith(f"ironlink_{field} = {value!r} is invalid: expected 1-32 upper-case letters")


@pytest.mark.parametrize("value", ["dev", "staging", "prod"])
def test_good_environments(value):
    assert identity.validate_identity(with_(environment=value)) == []


@pytest.mark.parametrize("value", ["production", "Prod", "PROD", "test", "prod ", "qa"])
def test_bad_environments(value):
    assert identity.validate_identity(with_(environment=value)) == [
        f"ironlink_environment = {value!r} is invalid: expected one of 'dev', 'staging', 'prod'"
    ]


@pytest.mark.parametrize("value", ["a", "0", "gw01", "zam-weld-site-a-gw-01", "a--b", "a" * 63, "1" * 63])
def test_good_hostnames(value):
    assert identity.validate_identity(with_(hostname=value)) == []


@pytest.mark.parametrize(
    "value",
    [
        "GW01",  # upper case: DNS is case-insensitive, we require one spelling
        "gw-01.example.com",  # a label, not an FQDN
        "-gw01",
        "gw01-",
        "gw_01",
        "a" * 64,  # RFC 1123 label limit is 63
        "gw01\n",
        "gw 01",
    ],
)
def test_bad_hostnames(value):
    errors = identity.validate_identity(with_(hostname=value))
    assert len(errors) == 1
    assert errors[0].startswith(f"ironlink_hostname = {value!r} is invalid: expected an RFC 1123 label")


@pytest.mark.parametrize("value", [None, ""])
def test_missing_field_names_variable_and_env_var(value):
    errors = identity.validate_identity(with_(site_id=value))
    assert errors == [
        "ironlink_site_id = <missing>: expected 1-32 upper-case letters, digits or dashes, first and last "
        "a letter or digit (e.g. 'SITE-A'); set it in the inventory or export IRONLINK_SITE_ID on the "
        "controller"
    ]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (1, "an integer"),
        (1.5, "a number"),
        (True, "a boolean"),
        (["GW-01"], "a list"),
        ({"id": "GW-01"}, "a mapping"),
    ],
)
def test_non_string_values_are_rejected_with_a_hint(value, kind):
    errors = identity.validate_identity(with_(gateway_id=value))
    assert len(errors) == 1
    assert errors[0].startswith(f"ironlink_gateway_id = {value!r} is {kind}, not a string")
    assert 'quote it: ironlink_gateway_id: "..."' in errors[0]


def test_type_names_are_yaml_words_even_for_subclasses():
    # Ansible passes its own int subclass (_AnsibleTaggedInt): the message must not show that class name.
    class TaggedInt(int):
        pass

    assert identity.type_name(TaggedInt(1)) == "an integer"
    assert identity.type_name(None) == "null"
    assert identity.type_name("x") == "a string"


@pytest.mark.parametrize(
    ("names", "found"),
    [
        (["ironlink_gatway_id", "ironlink_site_id"], {"gateway_id": ["ironlink_gatway_id"]}),
        (
            ["ironlink_client", "ironlink_hostnme", "IRONLINK_SITE_ID"],
            {
                "client_id": ["ironlink_client"],
                "hostname": ["ironlink_hostnme"],
                "site_id": ["IRONLINK_SITE_ID"],
            },
        ),
        # Real variables of the project that only share the prefix are not misspellings.
        (["ironlink_gateway_id", "ironlink_identity", "ironlink_broker_address", "gatway_id"], {}),
    ],
)
def test_misspelt_variables(names, found):
    assert identity.misspelt_variables(names) == found


def test_gateway_variables_include_misspellings():
    # A cloud host has an environment and a hostname too: only the site and gateway ids mark a gateway.
    names = ["ironlink_environment", "ironlink_hostname", "ironlink_client_id", "ironlink_broker_address", 3]
    assert identity.gateway_variables(names) == []
    assert identity.gateway_variables([*names, "ironlink_gatway_id"]) == ["ironlink_gatway_id"]
    assert identity.gateway_variables(["ironlink_site_id", "ironlink_gateway_id"]) == [
        "ironlink_gateway_id",
        "ironlink_site_id",
    ]
