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


@pytest.mark.parametrize("value", [1, 1.5, True, ["GW-01"], {"id": "GW-01"}])
def test_non_string_values_are_rejected_with_a_hint(value):
    errors = identity.validate_identity(with_(gateway_id=value))
    assert len(errors) == 1
    assert errors[0].startswith(f"ironlink_gateway_id = {value!r} is a {type(value).__name__}, not a string")
    assert "quote the value in YAML" in errors[0]


def test_every_bad_field_is_reported_in_field_order():
    errors = identity.validate_identity({"site_id": "site a", "environment": "live"})
    assert [e.split(" ", 1)[0] for e in errors] == [
        "ironlink_client_id",
        "ironlink_site_id",
        "ironlink_gateway_id",
        "ironlink_environment",
        "ironlink_hostname",
    ]


# --- precedence: inventory wins, environment fills in ---------------------------------------------


def test_inventory_wins_over_environment():
    env = {"IRONLINK_SITE_ID": "SITE-B", "IRONLINK_GATEWAY_ID": "GW-99"}
    resolved, sources = identity.resolve_identity(GOOD, env)
    assert resolved == GOOD
    assert set(sources.values()) == {"inventory"}


@pytest.mark.parametrize("unset", [None, ""])
def test_environment_fills_undefined_or_empty(unset):
    inventory = with_(gateway_id=unset, hostname=unset)
    del inventory["hostname"]  # one undefined, one None/empty
    env = {
        "IRONLINK_GATEWAY_ID": "GW-07",
        "IRONLINK_HOSTNAME": "zam-weld-site-a-gw-07",
        "IRONLINK_SITE_ID": "X",
    }
    resolved, sources = identity.resolve_identity(inventory, env)
    assert resolved == with_(gateway_id="GW-07", hostname="zam-weld-site-a-gw-07")
    assert sources == {
        "client_id": "inventory",
        "site_id": "inventory",
        "gateway_id": "env",
        "environment": "inventory",
        "hostname": "env",
    }


def test_empty_environment_value_counts_as_missing():
    resolved, sources = identity.resolve_identity(with_(gateway_id=""), {"IRONLINK_GATEWAY_ID": ""})
    assert resolved["gateway_id"] is None
    assert sources["gateway_id"] == "missing"


def test_fallback_disabled():
    resolved, sources = identity.resolve_identity(with_(gateway_id=None), None)
    assert resolved["gateway_id"] is None
    assert sources["gateway_id"] == "missing"


def test_environment_values_are_validated_too():
    resolved = identity.resolve_identity(with_(gateway_id=None), {"IRONLINK_GATEWAY_ID": "gw-07"})[0]
    assert identity.validate_identity(resolved) == [
        "ironlink_gateway_id = 'gw-07' is invalid: expected 1-32 upper-case letters, digits or dashes, "
        "first and last a letter or digit (e.g. 'GW-01')"
    ]


# --- uniqueness ------------------------------------------------------------------------------------


def test_distinct_fleet_has_no_duplicates():
    fleet = {
        "a": GOOD,
        "b": with_(gateway_id="GW-02", hostname="zam-weld-site-a-gw-02"),
        "c": with_(site_id="SITE-B", hostname="zam-weld-site-b-gw-01"),  # same gateway id, other site
        "d": with_(client_id="ACME", hostname="acme-site-a-gw-01"),  # same site/gateway, other client
    }
    assert identity.find_duplicates(fleet) == []


def test_duplicate_triple_names_both_hosts():
    fleet = {"gw-b": with_(hostname="other"), "gw-a": GOOD}
    assert identity.find_duplicates(fleet) == [
        "duplicate gateway identity (client_id='ZAM-WELD', site_id='SITE-A', gateway_id='GW-01'): "
        "hosts 'gw-a' and 'gw-b' both use it; give each gateway its own ironlink_gateway_id"
    ]


def test_duplicate_hostname_names_both_hosts():
    fleet = {"gw-a": GOOD, "gw-b": with_(gateway_id="GW-02")}
    assert identity.find_duplicates(fleet) == [
        "duplicate ironlink_hostname 'zam-weld-site-a-gw-01': hosts 'gw-a' and 'gw-b' both use it; "
        "hostnames must be unique across the fleet"
    ]


def test_both_duplicates_reported():
    errors = identity.find_duplicates({"gw-a": GOOD, "gw-b": dict(GOOD)})
    assert len(errors) == 2
    assert all("'gw-a' and 'gw-b'" in e for e in errors)


def test_uniqueness_is_case_insensitive():
    fleet = {"gw-a": GOOD, "gw-b": with_(gateway_id="gw-01", hostname="ZAM-WELD-SITE-A-GW-01")}
    errors = identity.find_duplicates(fleet)
    assert len(errors) == 2


def test_three_way_duplicate_gives_one_message_per_pair():
    fleet = {"a": GOOD, "b": with_(hostname="b"), "c": with_(hostname="c")}
    errors = identity.find_duplicates(fleet)
    assert len(errors) == 3
    assert ["'a' and 'b'" in errors[0], "'a' and 'c'" in errors[1], "'b' and 'c'" in errors[2]] == [True] * 3


def test_filter_on_host_reports_only_its_pairs():
    fleet = {
        "a": GOOD,
        "b": with_(hostname="b"),
        "c": with_(gateway_id="GW-03", hostname="x"),
        "d": with_(gateway_id="GW-04", hostname="x"),
    }
    assert identity.find_duplicates(fleet, host="c") == [
        "duplicate ironlink_hostname 'x': hosts 'c' and 'd' both use it; "
        "hostnames must be unique across the fleet"
    ]
    assert len(identity.find_duplicates(fleet, host="a")) == 1
    assert identity.find_duplicates({"a": GOOD}, host="a") == []


def test_incomplete_identities_are_not_duplicates():
    fleet = {
        "a": with_(gateway_id=None, hostname=None),
        "b": with_(gateway_id=None, hostname=""),
    }
    assert identity.find_duplicates(fleet) == []


@pytest.mark.parametrize(
    ("field", "env"),
    [
        ("client_id", "IRONLINK_CLIENT_ID"),
        ("hostname", "IRONLINK_HOSTNAME"),
        ("environment", "IRONLINK_ENVIRONMENT"),
    ],
)
def test_variable_names(field, env):
    assert identity.inventory_var(field) == f"ironlink_{field}"
    assert identity.env_var(field) == env
