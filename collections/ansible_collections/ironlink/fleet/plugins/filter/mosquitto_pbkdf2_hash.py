# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: mosquitto_pbkdf2_hash
short_description: Mosquitto 2.0 password-file hash that is stable across runs
version_added: 0.2.0
description:
  - Returns the C($7$) PBKDF2-SHA512 hash Mosquitto 2.0 reads from its password file,
    C($7$<iterations>$<base64 salt>$<base64 key>), as C(mosquitto_passwd) writes it.
  - C(mosquitto_passwd) draws a random salt on every run, so a templated password file would change on every
    converge. Here the 12-byte salt is C(HMAC-SHA512(password, "mosquitto-salt" + ":" + username)), truncated.
    The same password gives the same line (idempotent), two users never share a salt, and the salt cannot be
    computed without the password itself.
options:
  _input:
    description: The password.
    type: str
    required: true
  username:
    description: The user name, non-empty and without C(:).
    type: str
    required: true
  iterations:
    description: PBKDF2 iterations (Mosquitto 2.0's own default is 101).
    type: int
    default: 101
"""

EXAMPLES = r"""
- name: Write the broker's password file
  ansible.builtin.copy:
    content: "{{ user }}:{{ password | ironlink.fleet.mosquitto_pbkdf2_hash(user) }}\n"
    dest: /etc/mosquitto/passwd
    owner: root
    group: mosquitto
    mode: "0640"
  no_log: true
"""

RETURN = r"""
_value:
  description: The hash, without the user name.
  type: str
  sample: $7$101$...$...
"""

import base64
import hashlib
import hmac

from ansible.errors import AnsibleFilterError

# Mosquitto 2.0's own mosquitto_passwd uses PBKDF2-SHA512, 101 iterations, a 12-byte salt, a 64-byte key.
_SALT_BYTES = 12
_DEFAULT_ITERATIONS = 101


def pbkdf2_hash(password: str, username: str, iterations: int = _DEFAULT_ITERATIONS) -> str:
    """Return a Mosquitto 2.0 ``$7$`` password hash with a salt derived from the password and the username."""
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
    """Mosquitto filters."""

    def filters(self) -> dict:
        return {"mosquitto_pbkdf2_hash": pbkdf2_hash}
