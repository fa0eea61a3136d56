# SPDX-License-Identifier: Apache-2.0
"""Cloud topic names and MQTT topic-filter rules.

Topics hang off ``Identity.topic_prefix`` (``ironlink/<client>/<site>/<gateway>``) so broker ACLs can grant a
gateway exactly its own subtree.
"""

from __future__ import annotations

from ironlink_contract.model import Identity

MAX_TOPIC_BYTES = 65535


def telemetry_topic(identity: Identity) -> str:
    """Where batches (``wire.encode_batch`` payloads) are published, QoS 1."""
    return f"{identity.topic_prefix}/telemetry"


def status_topic(identity: Identity) -> str:
    """Retained gateway status (online/offline, Last Will)."""
    return f"{identity.topic_prefix}/status"


def command_topic(identity: Identity) -> str:
    """Commands from the cloud to this gateway."""
    return f"{identity.topic_prefix}/command"


def topic_filter_error(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid MQTT subscription filter, or None when it is."""
    if not topic_filter:
        return "empty topic filter"
    if len(topic_filter.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        return "topic filter too long"
    if "\x00" in topic_filter:
        return "topic filter contains NUL"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest, ``$``-topics not matched by wildcards)."""
    return match_levels(topic_filter.split("/"), topic.split("/"))


def match_levels(filter_levels: list[str], topic_levels: list[str]) -> bool:
    """``topic_matches`` over pre-split levels (the hot path pre-splits filters once)."""
    if topic_levels and topic_levels[0].startswith("$") and filter_levels and filter_levels[0] in ("+", "#"):
        return False
    for i, f in enumerate(filter_levels):
        if f == "#":
            return True
        if i >= len(topic_levels):
            return False
        if f != "+" and f != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)
