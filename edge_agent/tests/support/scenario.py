# SPDX-License-Identifier: Apache-2.0
"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import json
import time
from importlib import resources

import jsonschema

from .cloud import CloudSubscriber
from .publisher import LocalPublisher


def schema_validator() -> jsonschema.protocols.Validator:
    text = resources.files("ironlink_contract").joinpath("schema/telemetry-v1.json").read_text()
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def state(seq: int, machine: str = "M-100", **extra: object) -> tuple[str, bytes]:
    """A JSON state message for ``factory/<machine>/state`` carrying a sequence number and send time."""
    doc = {"temp": 20.0 + (seq % 100) / 10, "rpm": 1000 + seq % 7, "on": True, "seq": seq}
    doc["sent_ns"] = time.time_ns()
    doc.update(extra)
    return f"factory/{machine}/state", json.dumps(doc).encode()


def publish_states(pub: LocalPublisher, first: int, n: int, machine: str = "M-100", rate: float = 0) -> None:
    """Publish ``n`` state messages, seq ``first..first+n-1``, at ``rate``/s (0: as fast as possible)."""
    t0 = time.monotonic()
    for i in range(n):
        pub.publish(*state(first + i, machine))
        if rate:
            delay = t0 + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def seqs(sub: CloudSubscriber, machine: str = "M-100") -> list[int]:
    """The ``seq`` metric of every delivered document of ``machine``, in arrival order (duplicates kept)."""
    return [d["metrics"]["seq"] for d in sub.docs() if d["machine_id"] == machine and "seq" in d["metrics"]]
