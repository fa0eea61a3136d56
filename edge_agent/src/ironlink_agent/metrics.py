# SPDX-License-Identifier: Apache-2.0
"""The agent's metrics: the shared :class:`~ironlink_service.metrics.Metrics` store with the agent's names."""

from __future__ import annotations

from ironlink_service.metrics import Metrics

__all__ = ["AgentMetrics", "Metrics"]

PREFIX = "ironlink_agent_"

HELP: dict[str, str] = {
    "readings_received_total": "Readings received from an input, before spooling.",
    "readings_accepted_total": "Readings durably committed to the spool.",
    "readings_forwarded_total": "Readings acknowledged by the cloud broker (PUBACK), then deleted.",
    "readings_dropped_total": "Readings dropped, by reason.",
    "readings_dead_lettered_total": "Inputs rejected into the dead-letter table, by reason.",
    "dead_letters_evicted_total": "Dead letters evicted because the table reached dead_letter_max_rows.",
    "spool_depth_readings": "Readings currently in the spool.",
    "spool_bytes": "Bytes of reading data currently in the spool (running total).",
    "spool_oldest_age_seconds": "Age of the oldest reading in the spool.",
    "redelivered_readings_skipped_total": "Readings in redelivered MQTT messages that were already spooled.",
    "mqtt_input_connected": "1 when the local MQTT broker connection is up.",
    "modbus_connected": "1 when the Modbus device connection is up, by device.",
    "uplink_disconnects_total": "Cloud broker connections lost.",
    "spool_commit_errors_total": "Spool commits that failed (disk full, I/O error) and were retried.",
    "spool_pending_readings": "Readings queued in memory waiting for a spool commit.",
    "spool_quarantined_total": "Corrupt spool databases moved aside at start.",
    "uplink_connected": "1 when the cloud MQTT connection is up.",
    "uplink_last_success_timestamp_seconds": "Unix time of the last PUBACK from the cloud broker.",
    "uplink_publish_failures_total": "Batches the cloud broker refused (PUBACK reason >= 0x80), by reason.",
    "uplink_connect_failures_total": "Failed connection attempts to the cloud broker, by cause.",
    "uplink_inflight_batches": "Batches published and not yet acknowledged.",
    "restarts_total": "Agent loops restarted after a failure, by task.",
    "modbus_poll_errors_total": "Modbus polls that failed, by device.",
}


class AgentMetrics(Metrics):
    """Metrics named ``ironlink_agent_*``, with the help texts above."""

    def __init__(self) -> None:
        super().__init__(PREFIX, HELP)
