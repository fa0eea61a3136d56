# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Deterministic per-account secrets derived from one vaulted seed (controller side).

Used by the filter ironlink.fleet.account_passwords (fleet_pki) and by tests that must compute the
password of an account the way the fleet does. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import typing as t

# Version tag of the derivation. Changing it changes every password of every fleet: never do that in place.
DERIVATION = "ironlink-fleet-pki-v1"
MIN_SEED_LENGTH = 32
DEFAULT_VERSION = 1


def derive_password(seed: str, label: str) -> str:
    """Return a 43-character URL-safe password: base64url(HMAC-SHA256(seed, derivation + label)).

    The same seed and label always give the same password, so converges are idempotent without storing the
    password anywhere; anyone without the seed cannot compute it, and one account's password says nothing
    about another's (HMAC is a PRF). ``label`` names the account and its version, for example
    ``mqtt/ACME/S1/GW-01/v1``. Raises ``ValueError`` on a short seed or an empty label.
    """
    if not isinstance(seed, str) or len(seed) < MIN_SEED_LENGTH:
        raise ValueError(f"the seed needs at least {MIN_SEED_LENGTH} characters")
    if not isinstance(label, str) or not label:
        raise ValueError("the label must be a non-empty string")
    digest = hmac.new(seed.encode(), f"{DERIVATION}:{label}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def account_label(account: str, versions: t.Mapping[str, t.Any], label_prefix: str = "") -> str:
    """The derivation label of ``account``: ``<label_prefix><account>/v<version>``.

    ``versions`` maps account names (without the prefix) to their password version; an account that is
    not in it is at version 1. Raising an account's version there rotates its password alone.
    """
    return f"{label_prefix}{account}/v{versions.get(account, DEFAULT_VERSION)}"
