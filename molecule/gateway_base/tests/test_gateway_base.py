"""Behaviour of gateway_identity + gateway_base on a converged host."""

from __future__ import annotations

import json

from conftest import IDENTITY, SCENARIO_DIR, TESTINFRA_HOSTS
from testsupport.playbook import ansible_playbook, output, run_ansible

testinfra_hosts = TESTINFRA_HOSTS

HOSTNAME = IDENTITY["hostname"]


def test_live_and_persistent_hostname(host):
    assert host.check_output("hostname") == HOSTNAME
    assert host.file("/etc/hostname").content_string.strip() == HOSTNAME


def test_hostname_resolves_via_etc_hosts(host):
    fields = host.check_output(f"getent hosts {HOSTNAME}").split()
    assert fields == ["127.0.1.1", HOSTNAME]
    # The factory name's 127.0.1.1 entry was replaced, not duplicated; localhost untouched.
    assert host.run("getent hosts raspberrypi").rc == 2
    assert host.check_output("getent hosts localhost").split()[0] in ("127.0.0.1", "::1")


def test_timezone(host):
    assert host.check_output("timedatectl show --property=Timezone --value") == "Europe/Berlin"
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Berlin"
    assert host.check_output("date +%Z") in ("CET", "CEST")


def test_timesyncd_installed_enabled_configured(host):
    # Inside a container the unit is skipped by ConditionVirtualization=!container: only enablement and
    # the merged configuration are checkable here.
    assert host.package("systemd-timesyncd").is_installed
    assert host.service("systemd-timesyncd").is_enabled
    merged = _last_values(host.check_output("systemd-analyze cat-config systemd/timesyncd.conf"))
    assert merged["NTP"] == "ntp1.acme.example ntp2.acme.example"
    assert merged["FallbackNTP"].startswith("0.debian.pool.ntp.org")


def test_journald_caps_in_effect(host):
    merged = _last_values(host.check_output("systemd-analyze cat-config systemd/journald.conf"))
    assert merged["SystemMaxUse"] == "64M"
    assert merged["SystemMaxFileSize"] == "20M"
    assert merged["RuntimeMaxUse"] == "50M"
    assert host.service("systemd-journald").is_running


def test_service_account(host):
    user = host.user("ironlink")
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == "/var/lib/ironlink"
    assert user.group == "ironlink"
    assert user.uid < 1000  # system account
    for path in ("/var/lib/ironlink", "/var/log/ironlink"):
        d = host.file(path)
        assert d.is_directory
        assert (d.user, d.group, d.mode) == ("ironlink", "ironlink", 0o750)
    # nologin really refuses a shell.
    assert host.run("su -s /bin/sh -c 'exec /usr/sbin/nologin' ironlink").rc != 0


def test_logrotate_config_valid(host):
    result = host.run("logrotate --debug /etc/logrotate.d/ironlink")
    assert result.rc == 0, result.stderr
    assert "error:" not in result.stderr


def test_logrotate_rotates_oversized_log(host):
    # A log above maxsize (5M) is rotated on the next logrotate run even though "daily" has not elapsed.
    script = (
        "set -e; st=$(mktemp); "
        "head -c 6M /dev/zero > /var/log/ironlink/probe.log; "
        "chown ironlink:ironlink /var/log/ironlink/probe.log; "
        "logrotate --state $st /etc/logrotate.d/ironlink; "
        "test -s /var/log/ironlink/probe.log.1 && test ! -s /var/log/ironlink/probe.log; "
        "stat -c %U /var/log/ironlink/probe.log.1; "
        "rm -f $st /var/log/ironlink/probe.log*"
    )
    assert host.check_output(script) == "ironlink"


def test_identity_json(host):
    f = host.file("/etc/ironlink/identity.json")
    assert (f.user, f.group, f.mode) == ("root", "root", 0o644)
    assert json.loads(f.content_string) == IDENTITY
    d = host.file("/etc/ironlink")
    assert (d.user, d.mode) == ("root", 0o755)


def test_local_fact_readable_by_ansible():
    # What later roles see: ansible_facts['ansible_local']['ironlink'] as gathered by setup.
    setup = ("-m", "ansible.builtin.setup", "-a", "filter=ansible_local", "-o")
    result = run_ansible("ansible", "all", *setup, check=True)
    out = result.stdout
    payload = json.loads(out.split(" => ", 1)[1].strip())
    assert payload["ansible_facts"]["ansible_local"]["ironlink"] == IDENTITY


def _last_values(cat_config: str) -> dict[str, str]:
    """systemd-analyze cat-config output -> effective KEY=value (later files win for journald/timesyncd)."""
    values: dict[str, str] = {}
    for raw in cat_config.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


IDENTITY_FILES = "/etc/ironlink/identity.json /etc/ansible/facts.d/ironlink.fact"


def test_identity_preflight_refuses_bad_id(host):
    before = host.check_output(f"sha256sum {IDENTITY_FILES}")
    result = ansible_playbook(SCENARIO_DIR / "identity_invalid.yml")
    assert result.returncode == 2, output(result)
    assert 'gateway_identity_client_id="acme" does not match' in output(result)
    assert host.check_output(f"sha256sum {IDENTITY_FILES}") == before
