# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 13 §3: day-2 inputs are checked, and each bad one is refused with a message that names it.

Real ``ansible-playbook`` runs of the real roles and playbooks against small inventories written per test.
The fleet_pki checks run on the controller; the gateway hosts use the local connection and every bad input
is refused in a preflight, before anything reads or changes a host (``--check`` as well, so a regression
could not change this machine). No run needs a CA, a lab or a container.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from testsupport.playbook import ansible_playbook, output

GATEWAYS = {
    "gw-a1": ("LAB-CO", "SITE-A", "GW-01"),
    "gw-b1": ("LAB-CO", "SITE-B", "GW-01"),
}
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}


def gateway_vars(host: str) -> dict[str, str]:
    client, site, gateway = GATEWAYS[host]
    return {
        "ironlink_client_id": client,
        "ironlink_site_id": site,
        "ironlink_gateway_id": gateway,
        "ironlink_environment": "dev",
        "ironlink_hostname": host,
    }


def write_inventory(tmp_path: Path, gateways: dict[str, dict[str, Any]], **more: Any) -> Path:
    """An inventory with ``gateways`` (host -> vars, local connection), a controller and ``more`` groups."""
    inventory = {
        "all": {
            "children": {
                "controller": {"hosts": {"localhost": LOCAL}},
                "gateways": {"hosts": {host: {**LOCAL, **hostvars} for host, hostvars in gateways.items()}},
                **more,
            }
        }
    }
    path = tmp_path / "inventory" / "hosts.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(inventory))
    return path


def write_playbook(tmp_path: Path, plays: list[dict[str, Any]]) -> Path:
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


# --- fleet_pki: revocation, rotation and password versions
# ------------------------------------------------------

# Throw-away secrets of the lengths the role's preflight requires (plain variables: no vault is needed to
# prove that the inputs are checked).
PKI_VARS = {
    "fleet_pki_name": "day2",
    "fleet_pki_init": True,
    "vault_fleet_pki_ca_passphrase": "ca-passphrase-0123456789",  # pragma: allowlist secret
    "vault_fleet_pki_key_passphrase": "key-passphrase-0123456789",  # pragma: allowlist secret
    "vault_fleet_pki_mqtt_password_seed": "seed-0123456789-0123456789-0123456789",  # pragma: allowlist secret
}


def run_pki(tmp_path: Path, *extra: str, entry: str = "role") -> subprocess.CompletedProcess[str]:
    """fleet_pki on localhost, as cloud.yml's first play applies it (role entry, with argument validation), or
    only its preflight (``entry="preflight"``); the PKI directory is an empty temporary one."""
    inventory = write_inventory(tmp_path, {host: gateway_vars(host) for host in GATEWAYS})
    pki_vars = {**PKI_VARS, "fleet_pki_dir": str(tmp_path / "pki")}
    if entry == "role":
        play: dict[str, Any] = {"roles": ["fleet_pki"]}
    else:
        task = {"ansible.builtin.include_role": {"name": "fleet_pki", "tasks_from": "preflight"}}
        play = {"tasks": [{"name": "Preflight of fleet_pki", **task}]}
    playbook = write_playbook(
        tmp_path,
        [{"name": "Fleet PKI", "hosts": "localhost", "gather_facts": False, "vars": pki_vars, **play}],
    )
    return ansible_playbook(playbook, "--check", *extra, inventory=inventory, timeout=300)


def as_json(**variables: Any) -> tuple[str, str]:
    return "-e", json.dumps(variables)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            as_json(fleet_pki_password_versions={"LAB-CO/SITE-A/GW-1": 2}),
            "fleet_pki_password_versions key 'LAB-CO/SITE-A/GW-1' is not a gateway of inventory group "
            "'gateways' "
            "(did you mean 'LAB-CO/SITE-A/GW-01'?)",
            id="password-version-typo",
        ),
        pytest.param(
            as_json(fleet_pki_revoked_gateways=["LAB-CO.SITE-A.GW-01"]),
            "fleet_pki_revoked_gateways[0] 'LAB-CO.SITE-A.GW-01' is not a gateway name: expected "
            "CLIENT/SITE/GATEWAY",
            id="revoked-bad-format",
        ),
        pytest.param(
            as_json(fleet_pki_rotate_gateways=["LAB-CO/SITE-A/GW-01", "LAB-CO/SITE-Z/GW-09"]),
            "fleet_pki_rotate_gateways[1] 'LAB-CO/SITE-Z/GW-09' is not a gateway of inventory group "
            "'gateways'",
            id="rotate-unknown",
        ),
        pytest.param(
            ("-e", "fleet_pki_rotate_gateways=LAB-CO/SITE-A/GW-01"),  # pragma: allowlist secret
            "fleet_pki_rotate_gateways: expected a list, got a string ('LAB-CO/SITE-A/GW-01'); write it "
            "as a YAML "
            "list (fleet_pki_rotate_gateways: [LAB-CO/SITE-A/GW-01]), with -e as JSON: -e "
            '\'{"fleet_pki_rotate_gateways": '
            '["LAB-CO/SITE-A/GW-01"]}\'',
            id="rotate-string",
        ),
        pytest.param(
            as_json(fleet_pki_password_versions={"LAB-CO/SITE-A/GW-01": 0}),
            "fleet_pki_password_versions['LAB-CO/SITE-A/GW-01'] = 0: expected a version number, an "
            "integer >= 1",
            id="password-version-zero",
        ),
    ],
)
def test_bad_fleet_pki_day2_input_is_refused_by_name(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    result = run_pki(tmp_path, *extra)
    assert result.returncode != 0, output(result)
    assert message in output(result), output(result)
    # Refused in the preflight: nothing was created on the controller either.
    assert not (tmp_path / "pki").exists()


def test_a_string_for_a_list_is_not_blamed_on_other_settings(tmp_path: Path) -> None:
    result = run_pki(tmp_path, "-e", "fleet_pki_rotate_gateways=LAB-CO/SITE-A/GW-01")
    assert "must be an absolute path" not in output(result), output(result)
    # Role argument validation ran first and let the string through: the preflight's message is the one shown.
    assert "Validating arguments against arg spec 'main'" in output(result)
    assert "fleet_pki_rotate_gateways: expected a list, got a string" in output(result)


def test_revoking_a_gateway_removed_from_the_inventory_warns_and_goes_on(tmp_path: Path) -> None:
    # LAB-CO/SITE-C/GW-01 is no longer in the inventory but had a certificate (here: one already on the CRL):
    # allowed, said as a warning, and the run goes on.
    (tmp_path / "pki" / "revoked").mkdir(parents=True)
    (tmp_path / "pki" / "revoked" / "LAB-CO.SITE-C.GW-01.1f2e.crt").write_text("")
    result = run_pki(
        tmp_path,
        *as_json(
            fleet_pki_revoked_gateways=["LAB-CO/SITE-C/GW-01"],
            fleet_pki_password_versions={
                "LAB-CO/SITE-B/GW-01": 2,
                "ironlink-ingest": 3,
                "influxdb/LAB-CO/read": 2,
            },
        ),
        entry="preflight",
    )
    text = output(result)
    assert result.returncode == 0, text
    assert (
        "[WARNING]: fleet_pki_revoked_gateways[0] 'LAB-CO/SITE-C/GW-01' is not a gateway of inventory group "
        "'gateways' (did you mean 'LAB-CO/SITE-B/GW-01'?): only a certificate already issued to it (a "
        "gateway removed from the inventory) is revoked; if it was never issued nothing happens"
    ) in text


def test_revoking_a_name_that_never_had_a_certificate_is_refused(tmp_path: Path) -> None:
    # The typo: it passed with rc=0 and left the gateway meant trusted.
    result = run_pki(tmp_path, *as_json(fleet_pki_revoked_gateways=["LAB-CO/SITE-Z/GW-09"]))
    text = output(result)
    assert result.returncode != 0, text
    assert (
        "fleet_pki_revoked_gateways[0] 'LAB-CO/SITE-Z/GW-09' is not a gateway of inventory group 'gateways' "
        "and no certificate was ever issued to it: nothing to revoke"
    ) in text, text


# --- gateway roles and the identity check
# ------------------------------------------------------------------------


def run_role_preflight(
    tmp_path: Path, role: str, variables: dict[str, Any], entry: str
) -> subprocess.CompletedProcess[str]:
    """A gateway role on gw-a1 in check mode: only its preflight (as gateway/preflight.yml includes it, no
    argument validation) or the whole role (``entry="role"``: argument validation, then main.yml, which
    starts with the preflight)."""
    inventory = write_inventory(tmp_path, {"gw-a1": gateway_vars("gw-a1")})
    include: dict[str, Any] = {"name": role}
    if entry == "preflight":
        include["tasks_from"] = "preflight"
    play = {
        "name": f"Apply {role}",
        "hosts": "gateways",
        "gather_facts": False,
        "vars": variables,
        "tasks": [{"name": f"Include {role}", "ansible.builtin.include_role": include}],
    }
    return ansible_playbook(write_playbook(tmp_path, [play]), "--check", inventory=inventory, timeout=300)


@pytest.mark.parametrize("entry", ["preflight", "role"])
def test_a_string_for_a_gateway_role_list_names_the_variable(tmp_path: Path, entry: str) -> None:
    result = run_role_preflight(
        tmp_path, "gateway_firewall", {"gateway_firewall_ssh_sources": "10.89.77.0/24"}, entry
    )
    text = output(result)
    assert result.returncode != 0, text
    assert "gateway_firewall_ssh_sources: expected a list, got a string ('10.89.77.0/24')" in text, text
    assert "can only concatenate" not in text
    if entry == "role":
        # Role argument validation ran first and let the string through (it splits strings into lists).
        assert "Validating arguments against arg spec 'main'" in text, text
    # The first task of the run that reads the host (the CIDR probe) never ran.
    assert "Validate the source networks" not in text


def test_a_string_for_a_list_of_mappings_names_the_variable(tmp_path: Path) -> None:
    result = run_role_preflight(
        tmp_path, "gateway_ssh", {"gateway_ssh_authorized_keys": "ssh-ed25519 AAAA admin"}, "preflight"
    )
    text = output(result)
    assert result.returncode != 0, text
    assert "gateway_ssh_authorized_keys: expected a list, got a string ('ssh-ed25519 AAAA admin')" in text, (
        text
    )


IDENTITY = "playbooks/gateway/identity.yml"


def run_identity(
    tmp_path: Path, gateways: dict[str, dict[str, Any]], **more: Any
) -> subprocess.CompletedProcess[str]:
    return ansible_playbook(
        IDENTITY, "--check", inventory=write_inventory(tmp_path, gateways, **more), timeout=300
    )


def test_unquoted_numeric_gateway_id_says_quote_it(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory" / "hosts.yml"
    result = run_identity(tmp_path, {"gw-a1": gateway_vars("gw-a1")})
    assert result.returncode == 0, output(result)
    # Written by hand the way an operator would: an unquoted 01, which YAML reads as the integer 1.
    inventory.write_text(
        inventory.read_text().replace("ironlink_gateway_id: GW-01", "ironlink_gateway_id: 01")
    )
    result = ansible_playbook(IDENTITY, "--check", inventory=inventory, timeout=300)
    text = output(result)
    assert result.returncode != 0, text
    assert "ironlink_gateway_id = 1 is an integer, not a string" in text, text
    assert 'quote it: ironlink_gateway_id: "..."' in text, text


def test_misspelt_identity_variable_gets_a_did_you_mean(tmp_path: Path) -> None:
    hostvars = gateway_vars("gw-a1")
    hostvars["ironlink_gatway_id"] = hostvars.pop("ironlink_gateway_id")
    result = run_identity(tmp_path, {"gw-a1": hostvars})
    text = output(result)
    assert result.returncode != 0, text
    assert "ironlink_gatway_id is set: did you mean ironlink_gateway_id?" in text, text


def test_host_with_identity_outside_gateways_is_named_in_a_warning(tmp_path: Path) -> None:
    # A site group the technician put beside gateways instead of under it.
    stray = {"hosts": {"gw-c1": {**LOCAL, **gateway_vars("gw-a1"), "ironlink_site_id": "SITE-C"}}}
    result = run_identity(tmp_path, {"gw-a1": gateway_vars("gw-a1")}, site_lab_co_site_c=stray)
    text = output(result)
    assert result.returncode == 0, text
    assert (
        "[WARNING]: host 'gw-c1' has ironlink_gateway_id, ironlink_site_id but is not in inventory group"
        in text
    ), text
    assert "but is not in inventory group 'gateways'" in text
    # The controller and the real gateway are not named.
    assert "host 'localhost' has" not in text
    assert "host 'gw-a1' has" not in text
