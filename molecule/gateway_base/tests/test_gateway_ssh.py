"""Behaviour of gateway_ssh: effective sshd settings, real logins, and the lock-out guard."""

from __future__ import annotations

from conftest import SCENARIO_DIR, TESTINFRA_HOSTS
from testsupport.playbook import ansible_playbook, output

testinfra_hosts = TESTINFRA_HOSTS

DROPIN = "/etc/ssh/sshd_config.d/10-ironlink.conf"
SSH = "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5"


def _sshd_effective(host) -> dict[str, str]:
    """sshd -T as {keyword: value}; keywords printed once per value (allowgroups) are joined by spaces."""
    settings: dict[str, str] = {}
    for line in host.check_output("/usr/sbin/sshd -T").splitlines():
        key, _, value = line.partition(" ")
        settings[key] = f"{settings[key]} {value}" if key in settings else value
    return settings


def test_sshd_effective_settings(host):
    settings = _sshd_effective(host)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["pubkeyauthentication"] == "yes"
    assert settings["permitrootlogin"] == "without-password"
    assert settings["x11forwarding"] == "no"
    assert settings["maxauthtries"] == "4"
    assert settings["logingracetime"] == "30"
    assert settings["allowgroups"] == "root ironlink-admins"
    assert "allowusers" not in settings


def test_ssh_running(host):
    ssh = host.service("ssh")
    assert ssh.is_running
    assert ssh.is_enabled


def test_root_key_login_works(host):
    assert host.check_output(f"{SSH} -i /root/.ssh/id_ed25519 root@127.0.0.1 id -un") == "root"


def test_password_login_not_offered(host):
    result = host.run(f"{SSH} -o PubkeyAuthentication=no nokeys@127.0.0.1 true")
    assert result.rc == 255
    assert "Permission denied (publickey)" in result.stderr


def test_admin_key_installed(host):
    keys = host.check_output("ssh-keygen -l -f ~opsadmin/.ssh/authorized_keys")
    assert "opsadmin@ironlink-molecule (ED25519)" in keys


def test_lockout_guard_refuses_keyless_user(host):
    before = host.check_output(f"sha256sum {DROPIN}")
    result = ansible_playbook(SCENARIO_DIR / "guard.yml")
    assert result.returncode == 2, output(result)
    assert "SSH lock-out guard: user 'nokeys' has no usable public key" in output(result)
    assert "changed=0" in result.stdout
    assert host.check_output(f"sha256sum {DROPIN}") == before
    assert _sshd_effective(host)["maxauthtries"] == "4"


def test_sshd_reloaded_not_restarted(host):
    # The daemon serving logins predates the drop-in (reload, not restart) yet already enforces it
    # (test_password_login_not_offered): the operator's session survives the change.
    started = host.check_output('date -d "$(systemctl show ssh -P ExecMainStartTimestamp)" +%s')
    written = host.check_output(f"stat -c %Y {DROPIN}")
    assert int(started) < int(written)
