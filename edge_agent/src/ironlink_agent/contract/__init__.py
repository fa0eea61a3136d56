"""The telemetry contract between gateway agents and the cloud ingest service.

Standard library only: the ingest service imports this package without the agent's dependencies, and a unit
test keeps it that way.
"""

from ironlink_agent.contract.model import (
    ENVIRONMENTS,
    HOSTNAME_PATTERN,
    ID_PATTERN,
    SCHEMA_VERSION,
    Identity,
    MetricValue,
    Reading,
    Rejected,
)

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
