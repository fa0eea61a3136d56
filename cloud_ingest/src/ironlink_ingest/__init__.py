# SPDX-License-Identifier: Apache-2.0
"""``ironlink-ingest``: the cloud tier's MQTT -> InfluxDB 1.x ingest worker (docs/ingest.md).

Modules: ``config`` (YAML -> frozen dataclasses), ``messages`` (topic/identity checks, batch -> line
protocol), ``lineproto`` (escaping), ``ranges``/``dedup`` (message-id de-duplication), ``deadletter``
(bounded SQLite store), ``influx`` (HTTP /write), ``fleet`` (gateway status), ``consumer`` (paho, shared
subscription, manual ack), ``pipeline`` (batching, write-then-ack), ``service`` (TaskGroup, signals,
/health, /metrics), ``cli``.
"""

__version__ = "0.1.0"
