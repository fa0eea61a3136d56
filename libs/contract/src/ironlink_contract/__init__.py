# SPDX-License-Identifier: Apache-2.0
"""The telemetry contract between gateway agents and the cloud ingest service.

Standard library only, so both daemons import it without each other's dependencies (a unit test keeps it
that way). It is the one encoder/decoder of the wire format (``wire``); ``SCHEMA_VERSION`` is the version
of the canonical document, ``__version__`` the version of this distribution.
"""

from ironlink_contract.model import (
    ENVIRONMENTS,
    HOSTNAME_PATTERN,
    ID_PATTERN,
    SCHEMA_VERSION,
    Identity,
    MetricValue,
    Reading,
    Rejected,
)

__version__ = "0.1.0"

__all__ = [
    "ENVIRONMENTS",
    "HOSTNAME_PATTERN",
    "ID_PATTERN",
    "SCHEMA_VERSION",
    "Identity",
    "MetricValue",
    "Reading",
    "Rejected",
]
