"""The probe host, shared by the scenario's test modules."""

import pytest
import testinfra


@pytest.fixture(scope="module")
def probe():
    return testinfra.get_host("podman://ironlink-svc-probe")
