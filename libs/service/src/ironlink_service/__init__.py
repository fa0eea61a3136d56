# SPDX-License-Identifier: Apache-2.0
"""Plumbing shared by the Ironlink daemons (the gateway agent and the cloud ingest).

``config_fields`` (strict YAML field reader, shared TLS/log-level fields), ``logs`` (JSON lines, secret
redaction), ``metrics`` (Prometheus text), ``health`` (/health and /metrics server, health file),
``sdnotify`` (systemd readiness and watchdog), ``backoff`` (the one retry delay policy), ``mqtt`` (the one
MQTT transport) and ``supervisor`` (restarts a failed loop, not the process).
"""

__version__ = "0.1.0"
