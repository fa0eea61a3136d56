# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ironlink.fleet.account_passwords: the fleet's password derivation, pinned to the values in use."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ironlink.fleet.plugins.filter.account_passwords import (
    FilterModule,
    account_passwords,
)
from ansible_collections.ironlink.fleet.plugins.plugin_utils._passwords import account_label, derive_password

SEED = "s" * 32 + "-seed"

# Computed with the fleet_pki role filter this replaces: a changed value would rotate every deployed password.
# Test vectors of a made-up seed, not credentials (hence the allowlist pragmas for the secret scanner).
KNOWN = {
    "mqtt/ACME/S1/GW-01/v1": "XcKkWzaEZ4AfTFCAFprcMVAMA65iefJ6j5GI3cYHLiQ",  # pragma: allowlist secret
    "mqtt/ACME/S1/GW-01/v2": "ADya4dh6WcGy6JCwp7_qWzMtLUK9wyEST4mOJHFssTE",  # pragma: allowlist secret
    "influxdb/ZAM-WELD/write/v1": "O8oTvC0rGzpdPKGLOb72_2tmuIzKn73FbPcttKPgESg",  # pragma: allowlist secret
}


@pytest.mark.parametrize(("label", "password"), KNOWN.items())
def test_derivation_is_unchanged(label, password):
    assert derive_password(SEED, label) == password


def test_label_uses_the_account_version_or_one():
    versions = {"ACME/S1/GW-01": 2}
    assert account_label("ACME/S1/GW-01", versions, "mqtt/") == "mqtt/ACME/S1/GW-01/v2"
    assert account_label("ACME/S1/GW-02", versions, "mqtt/") == "mqtt/ACME/S1/GW-02/v1"
    assert account_label("influxdb/ZAM-WELD/write", {}) == "influxdb/ZAM-WELD/write/v1"


def test_filter_derives_each_account_with_its_version():
    got = account_passwords(
        ["ACME/S1/GW-01", "ACME/S1/GW-02"], SEED, {"ACME/S1/GW-01": 2}, label_prefix="mqtt/"
    )
    assert list(got) == ["ACME/S1/GW-01", "ACME/S1/GW-02"]
    assert got["ACME/S1/GW-01"] == KNOWN["mqtt/ACME/S1/GW-01/v2"]
    assert got["ACME/S1/GW-02"] == derive_password(SEED, "mqtt/ACME/S1/GW-02/v1")
    assert account_passwords(["influxdb/ZAM-WELD/write"], SEED) == {
        "influxdb/ZAM-WELD/write": KNOWN["influxdb/ZAM-WELD/write/v1"]
    }


def test_passwords_differ_per_account_and_seed():
    one = account_passwords(["a", "b"], SEED)
    assert one["a"] != one["b"]
    assert account_passwords(["a"], "t" * 32)["a"] != one["a"]
    assert all(len(p) == 43 for p in one.values())


def test_empty_account_list_gives_no_passwords():
    assert account_passwords([], SEED) == {}


@pytest.mark.parametrize(
    ("accounts", "seed", "versions", "message"),
    [
        (["a"], "short", {}, "at least 32 characters"),
        (["a"], None, {}, "at least 32 characters"),
        ("a", SEED, {}, "must be a list"),
        ([""], SEED, {}, "bad account name"),
        ([7], SEED, {}, "bad account name"),
        (["a"], SEED, ["a"], "versions must be a dictionary"),
    ],
)
def test_bad_input_fails_without_showing_the_seed(accounts, seed, versions, message):
    with pytest.raises(AnsibleFilterError, match=message) as caught:
        account_passwords(accounts, seed, versions)
    assert SEED not in str(caught.value)


def test_registered_name():
    assert FilterModule().filters() == {"account_passwords": account_passwords}
