"""scripts/lint/scan_secrets.py on throwaway git repositories with planted secrets.

The planted secrets are assembled at run time so that this file itself stays clean for the scanner.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lint" / "scan_secrets.py"
_spec = importlib.util.spec_from_file_location("scan_secrets", SCRIPT)
scan_secrets = importlib.util.module_from_spec(_spec)
sys.modules["scan_secrets"] = scan_secrets  # dataclasses look the module up by name
_spec.loader.exec_module(scan_secrets)

DASHES = "-" * 5
PRIVATE_KEY = "\n".join(
    [
        f"{DASHES}BEGIN OPENSSH PRIVATE {'KEY'}{DASHES}",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
        f"{DASHES}END OPENSSH PRIVATE {'KEY'}{DASHES}",
    ]
)
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
PW = "s3" + "cr3t"
VAULT_BLOB = "$ANSIBLE_VAULT;1.1;AES256\n  61626364\n"

CLEAN_YAML = """
---
# every way a secret-named variable may legitimately appear
mosquitto_admin_password: "{{ vault_mosquitto_admin_password }}"
influxdb_token: '{{ lookup("env", "INFLUX_TOKEN") }}'
vault_mosquitto_admin_password: !vault |
  $ANSIBLE_VAULT;1.1;AES256
  3132333435
grafana_secret:
mqtt_passwords:
  ZAM-WELD: "{{ vault_mqtt_password_zam_weld }}"
  ACME: "{{ vault_mqtt_password_acme }}"
api_token: CHANGE_ME
db_password: "<set in vault>"
user_password: "!"
password_min_length: 12
token_ttl: 3600
ssh_password_authentication: false
mosquitto_password_file: /etc/mosquitto/passwd
influxdb_token_name: telegraf
secret_key_path: /etc/ironlink/key.pem
gateway_ssh_permit_root_login: prohibit-password
_sshd_names:
  prohibit-password: without-password
empty_secret: ""
nulled_token: ~
tasks:
  - name: Set password
    ansible.builtin.user:
      name: ironlink
      password: "{{ ironlink_password | password_hash('sha512') }}"
broker_url: "mqtts://telegraf:{{ vault_telegraf_password }}@broker:8883"
"""


def git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "clean.yml").write_text(CLEAN_YAML)
    (tmp_path / "README.md").write_text("Set `password: <yours>` and connect to mqtt://broker:1883.\n")
    git(tmp_path, "add", "-A")
    return tmp_path


def run(root):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)], capture_output=True, text=True, check=False
    )


def findings(root):
    found, errors, _stale = scan_secrets.scan(root)
    assert errors == []
    return [(f.path, f.line, f.rule, f.variable) for f in found]


def test_clean_repository_passes(repo):
    proc = run(repo)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout == "scan_secrets: no secrets found\n"


def test_planted_private_key_is_caught_with_file_and_line(repo):
    (repo / "files").mkdir()
    (repo / "files" / "id_gateway").write_text("# deploy key\n" + PRIVATE_KEY + "\n")
    git(repo, "add", "files/id_gateway")
    proc = run(repo)
    assert proc.returncode == 1
    assert (
        proc.stdout.splitlines()[0]
        == "files/id_gateway:2: detect-secrets:Private Key: Private Key (value redacted)"
    )
    assert "b3BlbnNzaC1rZXk" not in proc.stdout  # never echo the secret


@pytest.mark.parametrize("kind", ["RSA ", "EC ", "DSA ", "ENCRYPTED ", "", "PGP "])
def test_private_key_variants(repo, kind):
    block = f"{DASHES}BEGIN {kind}PRIVATE KEY{' BLOCK' if kind == 'PGP ' else ''}{DASHES}"
    (repo / "key.txt").write_text(block + "\n")
    # detect-secrets finds every form but encrypted PKCS#8, which our own rule covers
    rule = "private-key" if kind == "ENCRYPTED " else "detect-secrets:Private Key"
    assert findings(repo) == [("key.txt", 1, rule, "")]


def test_public_key_and_certificate_are_fine(repo):
    (repo / "ca.pem").write_text(f"{DASHES}BEGIN CERTIFICATE{DASHES}\n{DASHES}BEGIN PUBLIC KEY{DASHES}\n")
    assert findings(repo) == []


def test_untracked_files_are_scanned_and_ignored_ones_are_not(repo):
    (repo / "new.pem").write_text(PRIVATE_KEY)
    (repo / "ignored").mkdir()
    (repo / "ignored" / "old.pem").write_text(PRIVATE_KEY)
    assert findings(repo) == [("new.pem", 1, "detect-secrets:Private Key", "")]


def test_aws_keys(repo):
    (repo / "aws.ini").write_text(
        f"[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n"
    )
    found = findings(repo)
    assert ("aws.ini", 2, "detect-secrets:AWS Access Key", "") in found
    assert {line for _, line, _, _ in found} == {2, 3}  # the secret key's line too


@pytest.mark.parametrize(
    ("line", "caught"),
    [
        ("url = https://admin:" + PW + "@influx.example:8086/write", True),
        ("url = https://influx.example/query?db=x&password=" + PW, True),
        ("url = https://influx.example/query?pwd=" + PW + "&u=admin", True),
        ("url = https://admin:{{ vault_influx_password }}@influx.example", False),
        ("url = https://admin:${INFLUX_PASSWORD}@influx.example", False),
        (
            "url = https://influx.example/query?password=CHANGE_ME",
            True,
        ),  # detect-secrets: a keyword is a keyword
        ("url = https://user@influx.example:8086/", False),
        ("url = http://[::1]:8086/ping", False),
    ],
)
def test_password_in_url(repo, line, caught):
    (repo / "telegraf.conf").write_text(line + "\n")
    found = findings(repo)
    assert bool(found) is caught, found
    assert all(
        (path, line) == ("telegraf.conf", 1) and rule.startswith("detect-secrets:")
        for path, line, rule, _ in found
    )


@pytest.mark.parametrize(
    ("yaml_text", "variable", "line"),
    [
        ("mosquitto_admin_password: hunter2\n", "mosquitto_admin_password", 1),
        ("influxdb_token: 'abc-DEF-123'\n", "influxdb_token", 1),
        ('grafana_secret: "s3cr3t"  # dev only\n', "grafana_secret", 1),
        ("vault_mqtt_password: plaintext\n", "vault_mqtt_password", 1),
        ("vault_mqtt_password_file: plaintext\n", "vault_mqtt_password_file", 1),  # vault_* has no exemption
        ("x:\n  - name: a\n    api_token: t0ken\n", "api_token", 3),
        ("mqtt_passwords:\n  ZAM-WELD: literal\n", "mqtt_passwords", 2),  # nested under a secret name
        ("tokens:\n  - aaaa\n", "tokens", 2),
        ("ssh_secret: |\n  line one\n  line two\nnext: 1\n", "ssh_secret", 2),
        ("DB_PASSWORD: hunter2\n", "DB_PASSWORD", 1),
    ],
)
def test_unvaulted_yaml_values_are_caught(repo, yaml_text, variable, line):
    (repo / "vars.yml").write_text(yaml_text)
    assert findings(repo) == [("vars.yml", line, "yaml-secret", variable)]


def test_yaml_report_redacts_the_value(repo):
    (repo / "vars.yaml").write_text("---\nmosquitto_admin_password: hunter2\n")
    proc = run(repo)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        "vars.yaml:2: yaml-secret: literal value for mosquitto_admin_password (value redacted, 7 chars); "
        "vault it or reference a vault_* variable"
    )
    assert "hunter2" not in proc.stdout


def test_fully_vaulted_file_is_skipped(repo):
    (repo / "vault.yml").write_text(VAULT_BLOB)
    assert findings(repo) == []


def test_argument_specs_only_defaults_are_checked(repo):
    (repo / "roles" / "demo" / "meta").mkdir(parents=True)
    (repo / "roles" / "demo" / "meta" / "argument_specs.yml").write_text(
        textwrap.dedent(
            """
            argument_specs:
              main:
                options:
                  demo_password:
                    type: str
                    required: true
                    no_log: true
                    description: Broker password.
                  demo_token:
                    type: str
                    default: literal-token
                    description: Token.
            """
        )
    )
    assert findings(repo) == [("roles/demo/meta/argument_specs.yml", 12, "yaml-secret", "demo_token")]


def test_secret_names_outside_yaml_are_not_yaml_checked(repo):
    (repo / "notes.md").write_text("mosquitto_admin_password: hunter2\n")
    # detect-secrets' keyword detector owns non-YAML files
    assert findings(repo) == [("notes.md", 1, "detect-secrets:Secret Keyword", "")]


def test_allowlist_with_justification_suppresses(repo):
    (repo / "molecule").mkdir()
    (repo / "molecule" / "converge.yml").write_text("broker_password: molecule-only\n")
    (repo / ".secrets-allowlist").write_text(
        "# path glob, rule[:variable], justification\n"
        "molecule/*.yml yaml-secret:broker_password throwaway broker inside a test container\n"
    )
    assert findings(repo) == []
    assert run(repo).returncode == 0


def test_allowlist_is_specific_to_variable_and_rule(repo):
    (repo / "molecule").mkdir()
    (repo / "molecule" / "converge.yml").write_text("broker_password: a\nother_password: b\n")
    (repo / ".secrets-allowlist").write_text("molecule/*.yml yaml-secret:broker_password test only\n")
    assert findings(repo) == [("molecule/converge.yml", 2, "yaml-secret", "other_password")]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("molecule/*.yml yaml-secret\n", "entry needs '<path glob> <rule>[:<variable>] <justification>'"),
        ("molecule/*.yml everything because\n", "unknown rule 'everything'"),
    ],
)
def test_allowlist_entries_need_justification_and_known_rule(repo, entry, error):
    (repo / ".secrets-allowlist").write_text(entry)
    proc = run(repo)
    assert proc.returncode == 1
    assert error in proc.stdout


def test_stale_allowlist_entry_is_a_warning(repo):
    (repo / ".secrets-allowlist").write_text("gone.yml yaml-secret removed file, kept by mistake\n")
    proc = run(repo)
    assert proc.returncode == 0
    assert "warning: .secrets-allowlist:1: matches nothing (stale): gone.yml yaml-secret" in proc.stdout


def test_binary_files_are_skipped(repo):
    (repo / "blob.bin").write_bytes(b"\0\1\2" + PRIVATE_KEY.encode())
    assert findings(repo) == []


def baseline_for(repo, audited):
    """A baseline accepting what detect-secrets finds in the repo now, audited as false positives or not."""
    proc = subprocess.run(
        [sys.executable, "-m", "detect_secrets", "scan", *sorted(scan_secrets.git_files(repo))],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(proc.stdout)
    for entries in data["results"].values():
        for entry in entries:
            entry["is_secret"] = False if audited else None
    (repo / ".secrets.baseline").write_text(json.dumps(data))


def test_audited_baseline_accepts_known_findings_only(repo):
    (repo / "test_pw.py").write_text('broker_password = "throwaway-' + PW + '"\n')
    git(repo, "add", "-A")
    baseline_for(repo, audited=True)
    assert findings(repo) == []
    # the same file gains a second, new secret: caught although the file is in the baseline
    with (repo / "test_pw.py").open("a") as f:
        f.write(PRIVATE_KEY + "\n")
    assert findings(repo) == [("test_pw.py", 2, "detect-secrets:Private Key", "")]


def test_unaudited_baseline_entry_is_an_error(repo):
    (repo / "test_pw.py").write_text('broker_password = "throwaway-' + PW + '"\n')
    git(repo, "add", "-A")
    baseline_for(repo, audited=False)
    proc = run(repo)
    assert proc.returncode == 1
    assert "test_pw.py:1 Secret Keyword is not audited as a false positive" in proc.stdout
