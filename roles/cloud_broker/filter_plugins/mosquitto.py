# Copyright: Ironlink
# SPDX-License-Identifier: proprietary
"""Filters of the cloud_broker role: Mosquitto password-file hashes that are stable across runs."""

from __future__ import annotations

import base64
import hashlib
import hmac

from ansible.errors import AnsibleFilterError

# Mosquitto 2.0's own mosquitto_passwd uses PBKDF2-SHA512, 101 iterations, a 12-byte salt, a 64-byte key.
_SALT_BYTES = 12
_DEFAULT_ITERATIONS = 101


def pbkdf2_hash(password: str, username: str, iterations: int = _DEFAULT_ITERATIONS) -> str:
    """Return a Mosquitto 2.0 ``$7$`` password hash with a salt derived from the password and the username.

    ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt, iterations)>`` is what
    ``mosquitto_passwd`` writes, but it draws a random salt on every run, so the file would change on every
    converge. Here the salt is HMAC-SHA512(password, "mosquitto-salt:" + username), truncated to 12 bytes: the
    same password gives the same line (idempotent), two users never share a salt, and the salt cannot be
    computed without the password itself, so it adds no information an attacker can precompute against.
    """
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("mosquitto_pbkdf2_hash: the password must be a non-empty string")
    if not isinstance(username, str) or not username or ":" in username:
        raise AnsibleFilterError("mosquitto_pbkdf2_hash: the username must be a non-empty string without ':'")
    iterations = int(iterations)
    if iterations < 1:
        raise AnsibleFilterError("mosquitto_pbkdf2_hash: iterations must be positive")
    mac = hmac.new(password.encode(), f"mosquitto-salt:{username}".encode(), hashlib.sha512)
    salt = mac.digest()[:_SALT_BYTES]
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


class FilterModule:
    """cloud_broker filters."""

    def filters(self) -> dict:
        return {"mosquitto_pbkdf2_hash": pbkdf2_hash}
