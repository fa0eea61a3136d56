"""Behaviour of gateway_host_services, gateway_firewall and gateway_docker, from the hosts and a probe."""

import json

import pytest
from svc_hosts import CONNECT, FRESH, PRELOADED, connect, gw
from testsupport.polling import wait_until


@pytest.fixture(scope="module")
def listeners():
    """Listeners on 1883 (mosquitto masked on preloaded, absent on fresh) and 9090, for the module."""
    started = []
    for name, port in [(FRESH, 1883), (PRELOADED, 1883), (FRESH, 9090)]:
        host, unit = gw(name), f"ironlink-verify-{port}"
        host.run("systemctl stop %s; systemctl reset-failed %s", unit, unit)
        host.check_output("systemd-run --unit=%s python3 -m http.server %s", unit, str(port))
        started.append((host, unit, port))
    for host, unit, port in started:
        socket = host.socket(f"tcp://0.0.0.0:{port}")
        wait_until(lambda s=socket: s.is_listening, 10, f"{unit} to listen")
    yield
    for host, unit, _ in started:
        host.run("systemctl stop %s", unit)


def local_fact(name):
    return json.loads(gw(name).file("/etc/ansible/facts.d/ironlink_docker.fact").content_string)


# Firewall


@pytest.mark.parametrize("name", [FRESH, PRELOADED])
def test_ssh_is_accepted(probe, name):
    assert connect(probe, name, 22) == "open"


@pytest.mark.parametrize("name", [FRESH, PRELOADED])
def test_closed_port_is_dropped_although_something_listens(probe, name):
    assert gw(name).socket("tcp://0.0.0.0:8080").is_listening
    assert gw(name).run("python3 -c %s 127.0.0.1 8080", CONNECT).stdout.strip() == "open"
    assert connect(probe, name, 8080) == "timeout"


def test_edge_port_accepted_from_edge_sources(probe, listeners):
    assert connect(probe, PRELOADED, 1883) == "open"


def test_edge_port_dropped_outside_edge_sources(probe, listeners):
    assert gw(FRESH).socket("tcp://0.0.0.0:1883").is_listening
    assert connect(probe, FRESH, 1883) == "timeout"


def test_extra_rule_accepts_its_port(probe, listeners):
    assert connect(probe, FRESH, 9090) == "open"


@pytest.mark.parametrize("name", [FRESH, PRELOADED])
def test_ruleset_loaded_by_nftables_service(name):
    host = gw(name)
    table = host.check_output("nft list table inet ironlink")
    assert "hook input priority filter; policy drop;" in table
    assert "ct status dnat jump dnat_inbound" in table
    service = host.service("nftables")
    assert service.is_enabled and service.is_running


@pytest.mark.parametrize("name", [FRESH, PRELOADED])
def test_docker_nat_table_survives_firewall_reload_and_restart(name):
    host = gw(name)
    assert "chain DOCKER" in host.check_output("nft list table ip nat")
    host.check_output("systemctl reload nftables")
    assert "chain DOCKER" in host.check_output("nft list table ip nat")
    host.check_output("systemctl restart nftables")
    assert "chain DOCKER" in host.check_output("nft list table ip nat")
    assert host.run("nft list table inet ironlink").rc == 0


# Host services


@pytest.mark.parametrize("unit", ["mosquitto", "influxdb"])
def test_conflicting_services_masked_on_preloaded(unit):
    host = gw(PRELOADED)
    assert host.run("systemctl is-enabled %s", unit).stdout.strip() == "masked"
    assert host.run("systemctl is-active %s", unit).stdout.strip() == "inactive"
    # disabled before masking: no enablement link survives to come back on unmask
    assert not host.file(f"/etc/systemd/system/multi-user.target.wants/{unit}.service").exists


def test_absent_services_left_alone_on_fresh():
    host = gw(FRESH)
    for unit in ["mosquitto", "influxdb", "grafana-server"]:
        assert not host.file(f"/etc/systemd/system/{unit}.service").exists


# Docker


def test_preloaded_engine_untouched():
    host = gw(PRELOADED)
    before = host.file("/var/lib/ironlink-test/docker-before.txt").content_string
    now = host.check_output(
        "dpkg-query -W -f='${Package} ${Version} ${Status}\\n' docker.io containerd runc;"
        " stat -c '%n %i %Y' /usr/sbin/dockerd; systemctl show -p InvocationID --value docker"
    )
    assert now.strip() == before.strip()  # same versions, same binary, dockerd never restarted
    assert not host.file("/etc/docker/daemon.json").exists
    assert not host.package("docker-compose").is_installed
    fact = local_fact(PRELOADED)
    assert fact["managed"] is False and fact["preexisting"] is True
    assert fact["engine_packages"] == ["docker.io"]


def test_service_account_in_docker_group_where_it_exists():
    assert "docker" in gw(PRELOADED).user("ironlink").groups
    assert not gw(FRESH).user("ironlink").exists


def test_fresh_engine_installed_from_debian():
    host = gw(FRESH)
    assert host.package("docker.io").is_installed
    assert host.package("docker-compose").is_installed
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon["log-driver"] == "json-file"
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert host.service("docker").is_enabled
    assert host.check_output("docker info --format '{{.LoggingDriver}}'") == "json-file"
    fact = local_fact(FRESH)
    assert fact["managed"] is True and fact["preexisting"] is False
    assert fact["source"] == "debian" and fact["compose_command"] == "docker-compose"
