# Copyright: Ironlink
# SPDX-License-Identifier: proprietary
"""Filters of the fleet_pki role: deterministic per-account secrets derived from one vaulted seed."""

from __future__ import annotations

import base64
import hashlib
import hmac

from ansible.errors import AnsibleFilterError

# Version tag of the derivation. Changing it changes every password of every fleet: never do that in place.
_DERIVATION = "ironlink-fleet-pki-v1"


def derive_password(seed: str, label: str) -> str:
    """Return a 43-character URL-safe password: base64url(HMAC-SHA256(seed, derivation + label)).

    The same seed and label always give the same password, so converges are idempotent without storing the
    password anywhere; anyone without the seed cannot compute it, and one account's password says nothing
    about another's (HMAC is a PRF). ``label`` names the account and its version, for example
    ``mqtt/ACME/S1/GW-01/v1``.
    """
    if not isinstance(seed, str) or len(seed) < 32:
        raise AnsibleFilterError("fleet_pki_derive_password: the seed needs at least 32 characters")
    if not isinstance(label, str) or not label:
        raise AnsibleFilterError("fleet_pki_derive_password: the label must be a non-empty string")
    digest = hmac.new(seed.encode(), f"{_DERIVATION}:{label}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class FilterModule:
    """fleet_pki filters."""

    def filters(self) -> dict:
        return {"fleet_pki_derive_password": derive_password}
