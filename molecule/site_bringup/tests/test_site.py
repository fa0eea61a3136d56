"""Behaviour of a gateway after playbooks/site_bringup.yml, checked on the hosts and over real SSH."""

import json
import os
import subprocess

import pytest
import testinfra

HOSTS = {
    "ironlink-sb-gw-a": {"ip": "10.89.78.11", "site_id": "SITE-A", "hostname": "mol-site-a-gw-01"},
    "ironlink-sb-gw-b": {"ip": "10.89.78.12", "site_id": "SITE-B", "hostname": "mol-site-b-gw-01"},
}
KEY = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "id_ed25519")
SSH = [
    "ssh",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=5",
]


def expected(host):
    return HOSTS[host.backend.get_hostname()]


def test_identity_file_matches_inventory(host):
    f = host.file("/etc/ironlink/identity.json")
    assert f.user == "root" and f.mode == 0o644
    identity = json.loads(f.content_string)
    want = expected(host)
    assert identity["client_id"] == "MOL-TEST"
    assert identity["site_id"] == want["site_id"]
    assert identity["gateway_id"] == "GW-01"
    assert identity["environment"] == "staging"
    assert identity["hostname"] == want["hostname"]


def test_local_fact_carries_identity(host):
    fact = json.loads(host.file("/etc/ansible/facts.d/ironlink.fact").content_string)
    assert fact["hostname"] == expected(host)["hostname"]


def test_hostname_is_live_and_resolves(host):
    name = expected(host)["hostname"]
    assert host.check_output("hostname") == name
    assert host.run(f"getent hosts {name}").rc == 0


def test_key_login_still_works_after_hardening(host):
    ip = expected(host)["ip"]
    out = subprocess.run(
        [*SSH, "-i", KEY, "-o", "BatchMode=yes", f"root@{ip}", "hostname"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected(host)["hostname"]


def test_password_login_is_not_offered(host):
    ip = expected(host)["ip"]
    out = subprocess.run(
        [
            *SSH,
            "-o",
            "BatchMode=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            f"root@{ip}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 255
    assert "Permission denied (publickey)" in out.stderr


@pytest.mark.parametrize("port, reachable", [(22, True), (8080, False)])
def test_firewall_from_the_other_gateway(port, reachable):
    """gw-b connects to gw-a: SSH is allowed from the lab network, a port nothing allows is dropped."""
    probe_host = testinfra.get_host("podman://ironlink-sb-gw-b")
    target = HOSTS["ironlink-sb-gw-a"]["ip"]
    # a listener on gw-a's closed port proves the firewall, not a missing server, stops the connection
    listener = "systemd-run --unit=ironlink-test-listener --collect python3 -m http.server 8080"
    subprocess.run(
        ["podman", "exec", "ironlink-sb-gw-a", "sh", "-c", f"{listener} >/dev/null 2>&1 || true"],
        check=True,
        timeout=30,
    )
    connect = "timeout 5 python3 -c \"import socket; socket.create_connection(('{}', {}), 3)\""
    listening = testinfra.get_host("podman://ironlink-sb-gw-a")
    assert (
        listening.run(
            f"for i in 1 2 3 4 5; do {connect.format('127.0.0.1', port)} && exit 0; sleep 1; done; exit 1"
        ).rc
        == 0
    )
    assert (probe_host.run(connect.format(target, port)).rc == 0) is reachable
