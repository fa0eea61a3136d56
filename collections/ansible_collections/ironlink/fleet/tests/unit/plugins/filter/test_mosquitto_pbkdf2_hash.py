# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ironlink.fleet.mosquitto_pbkdf2_hash: Mosquitto 2.0 $7$ hashes, stable across runs."""

from __future__ import annotations

import base64
import hashlib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ironlink.fleet.plugins.filter.mosquitto_pbkdf2_hash import FilterModule, pbkdf2_hash

# Computed with the cloud_broker role filter this replaces: a change would rewrite every password file.
# A test vector of a made-up password, not a credential.
KNOWN = (
    "$7$101$xT+clvRjGun56/KJ$"
    "9cOtcxKyqWmtDVdSsCiD37MgAcRTzrgHbLnlEhhRHPpK"  # pragma: allowlist secret
    "iajGckR8nD+Y0iEaEhASB7AVOnBjE9xK+41O6CoSDA=="  # pragma: allowlist secret
)


def test_hash_is_unchanged():
    assert pbkdf2_hash("correct horse", "ACME/S1/GW-01") == KNOWN


def test_hash_is_pbkdf2_sha512_of_the_password_with_its_salt():
    empty, scheme, iterations, salt, key = pbkdf2_hash("pw", "user", 5).split("$")
    assert empty == ""
    assert (scheme, iterations) == ("7", "5")
    assert len(base64.b64decode(salt)) == 12
    assert base64.b64decode(key) == hashlib.pbkdf2_hmac("sha512", b"pw", base64.b64decode(salt), 5)


def _salt(password: str, user: str) -> str:
    return pbkdf2_hash(password, user).split("$")[3]


def test_salt_depends_on_user_and_password():
    assert _salt("pw", "a") == _salt("pw", "a")
    assert _salt("pw", "a") != _salt("pw", "b")
    assert _salt("pw", "a") != _salt("pw2", "a")


@pytest.mark.parametrize(
    ("password", "username", "iterations", "message"),
    [
        ("", "u", 101, "password must be a non-empty string"),
        (None, "u", 101, "password must be a non-empty string"),
        ("pw", "", 101, "username must be"),
        ("pw", "a:b", 101, "without ':'"),
        ("pw", "u", 0, "iterations must be positive"),
    ],
)
def test_bad_input_is_refused(password, username, iterations, message):
    with pytest.raises(AnsibleFilterError, match=message):
        pbkdf2_hash(password, username, iterations)


def test_registered_name():
    assert FilterModule().filters() == {"mosquitto_pbkdf2_hash": pbkdf2_hash}
