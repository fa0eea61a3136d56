"""The lifetime of a per-test bench of real processes, shared by the integration fixtures."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest


class _Bench(Protocol):
    def diagnostics(self) -> str: ...

    def close(self) -> None: ...


B = TypeVar("B", bound=_Bench)


@contextlib.contextmanager
def per_test_bench(
    request: pytest.FixtureRequest, world_dir: Path, build: Callable[[Path], B], title: str
) -> Iterator[B]:
    """``build`` a bench in a directory named after the test, and always close it (its processes by PID).

    When the test failed, the bench's ``diagnostics()`` (its logs) go into the report under ``title``;
    ``rep_call`` is set by the ``pytest_runtest_makereport`` hook in conftest.
    """
    d = world_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    d.mkdir()
    bench = build(d)
    try:
        yield bench
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            rep.sections.append((title, bench.diagnostics()))
        bench.close()
