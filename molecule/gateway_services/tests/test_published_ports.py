"""The Docker caveat, live: a port published the way Docker does it (DNAT in ip nat DOCKER, accept in
ip filter DOCKER, a veth "container" on docker0) crosses FORWARD, not INPUT; the ironlink table filters it.

dockerd runs on both gateways but cannot start a container here (read-only cgroup fs), so the container is a
network namespace with a listener, and the rules are the ones `docker run -p PORT:PORT` writes."""

import pytest
from svc_hosts import CONNECT, FRESH, PRELOADED, connect, gw
from testsupport.polling import wait_until

CTR_IP = "172.17.0.99"
PORTS = ["3000", "8081"]  # 3000 is an edge port, 8081 is not


SETUP = f"""
set -e
ip netns add ilv-ctr
ip link add ilv-h type veth peer name ilv-c
ip link set ilv-c netns ilv-ctr
ip link set ilv-h master docker0 up
ip -n ilv-ctr addr add {CTR_IP}/16 dev ilv-c
ip -n ilv-ctr link set ilv-c up
ip -n ilv-ctr link set lo up
ip -n ilv-ctr route add default via 172.17.0.1
for port in {" ".join(PORTS)}; do
  systemd-run --unit=ilv-ctr-$port ip netns exec ilv-ctr python3 -m http.server $port
  iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport $port -j DNAT --to-destination {CTR_IP}:$port
  iptables -A DOCKER -d {CTR_IP}/32 ! -i docker0 -o docker0 -p tcp --dport $port -j ACCEPT
done
"""

TEARDOWN = f"""
for port in {" ".join(PORTS)}; do
  systemctl stop ilv-ctr-$port
  iptables -t nat -D DOCKER ! -i docker0 -p tcp --dport $port -j DNAT --to-destination {CTR_IP}:$port
  iptables -D DOCKER -d {CTR_IP}/32 ! -i docker0 -o docker0 -p tcp --dport $port -j ACCEPT
done
ip link del ilv-h
ip netns del ilv-ctr
true
"""


@pytest.fixture(scope="module")
def published():
    for name in (FRESH, PRELOADED):
        gw(name).run(TEARDOWN)
        gw(name).check_output(SETUP)
    for name in (FRESH, PRELOADED):
        host = gw(name)
        wait_until(
            lambda h=host: len(h.check_output("ip netns exec ilv-ctr ss -Htln").splitlines()) >= len(PORTS),
            10,
            f"the container's listeners on {name}",
        )
    yield
    for name in (FRESH, PRELOADED):
        gw(name).run(TEARDOWN)


@pytest.mark.parametrize("name", [FRESH, PRELOADED])
def test_container_listens_behind_docker0(published, name):
    for port in PORTS:
        assert gw(name).run("python3 -c %s %s %s", CONNECT, CTR_IP, port).stdout.strip() == "open"


def test_published_edge_port_accepted_from_edge_sources(probe, published):
    assert connect(probe, PRELOADED, "3000") == "open"


def test_published_edge_port_dropped_outside_edge_sources(probe, published):
    assert connect(probe, FRESH, "3000") == "timeout"


def test_published_other_port_dropped(probe, published):
    assert connect(probe, PRELOADED, "8081") == "timeout"


def test_the_drop_is_the_ironlink_table(probe, published):
    """Control: without the ironlink table, Docker's own rules let the same connection through."""
    host = gw(PRELOADED)
    host.check_output("nft delete table inet ironlink")
    try:
        assert connect(probe, PRELOADED, "8081") == "open"
    finally:
        host.check_output("systemctl reload nftables")
    assert connect(probe, PRELOADED, "8081") == "timeout"
