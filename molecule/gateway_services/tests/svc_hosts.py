"""The hosts of the gateway_services scenario and how the tests reach them: a TCP connect from the probe host
(open, refused or timeout) tells the firewall's verdict apart."""

import testinfra

FRESH = "ironlink-svc-fresh"
PRELOADED = "ironlink-svc-preloaded"

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
except OSError:
    print("timeout")
"""


def gw(name):
    return testinfra.get_host(f"podman://{name}")


def connect(probe, name, port):
    """What a TCP client on the probe sees: open, refused or timeout (silently dropped)."""
    return probe.check_output("python3 -c %s %s %s", CONNECT, name, str(port))
