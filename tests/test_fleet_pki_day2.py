# SPDX-License-Identifier: Apache-2.0
"""Issue 13 §1, §2: the fleet CA is never replaced by accident; secrets and the CA are created on purpose.

fleet_pki runs on the controller, so these run the real role on localhost against the lab inventory (and
copies of it) with a throw-away IRONLINK_LAB_DIR; no host is contacted. Every refusal is also checked to have
changed no byte of the PKI and created nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from testsupport.pki_runs import (
    INIT_PLAYBOOK,
    LAB_INVENTORY,
    PKI_PLAYBOOK,
    changed,
    lab_init,
    run_pki,
    snapshot,
)
from testsupport.playbook import output


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab directory after one init step: secrets, CA, fleet.json, broker and gateway certificates, CRL."""
    lab_dir = tmp_path_factory.mktemp("lab")
    result = lab_init(lab_dir)
    assert result.returncode == 0, output(result)
    return lab_dir


@pytest.fixture
def lab_copy(initialised: Path, tmp_path: Path) -> Path:
    """A private copy of the initialised lab directory, for tests that damage or remove part of it."""
    copy = tmp_path / "lab"
    shutil.copytree(initialised, copy)
    return copy


@pytest.fixture
def pki_playbook(tmp_path: Path) -> Path:
    path = tmp_path / "pki.yml"
    path.write_text(PKI_PLAYBOOK)
    return path


def test_init_creates_the_fleet_identity_and_is_idempotent(initialised: Path) -> None:
    recorded = (initialised / "pki" / "fleet.json").read_text()
    assert '"fleet": "lab"' in recorded and '"ca_common_name": "Ironlink fleet CA (lab)"' in recorded
    before = snapshot(initialised)
    assert {"secrets/mqtt_password_seed", "pki/ca/ca.key", "pki/ca/ca.crt", "pki/ca/crl.pem"} <= before.keys()
    again = lab_init(initialised)
    assert again.returncode == 0, output(again)
    assert changed(again) == 0, output(again)
    assert snapshot(initialised) == before


def test_renamed_inventory_copy_leaves_every_file_byte_identical(
    lab_copy: Path, pki_playbook: Path, tmp_path: Path
) -> None:
    inventory = tmp_path / "ux-inv-base"
    shutil.copytree(LAB_INVENTORY, inventory)
    before = snapshot(lab_copy)
    result = run_pki(lab_copy, pki_playbook, inventory=inventory)
    assert result.returncode == 0, output(result)
    assert changed(result) == 0, output(result)
    assert snapshot(lab_copy) == before


@pytest.mark.parametrize("playbook", ["pki", "init"])
def test_changed_fleet_name_refuses_with_both_names(
    lab_copy: Path, pki_playbook: Path, playbook: str
) -> None:
    before = snapshot(lab_copy)
    result = run_pki(
        lab_copy, pki_playbook if playbook == "pki" else INIT_PLAYBOOK, "-e", "fleet_pki_name=ux-inv-base"
    )
    assert result.returncode != 0
    text = output(result)
    assert "fleet_pki_name is ux-inv-base, but the PKI in" in text, text
    assert "belongs to fleet lab" in text and "set fleet_pki_name: lab" in text, text
    assert snapshot(lab_copy) == before


def test_changed_ca_subject_refuses_with_both_subjects(lab_copy: Path, pki_playbook: Path) -> None:
    before = snapshot(lab_copy)
    result = run_pki(
        lab_copy, pki_playbook, "-e", "fleet_pki_ca_common_name='Ironlink fleet CA (ux-inv-base)'"
    )
    assert result.returncode != 0
    text = output(result)
    assert 'fleet_pki_ca_common_name is "Ironlink fleet CA (ux-inv-base)"' in text, text
    assert 'the CA of fleet lab is "Ironlink fleet CA (lab)"' in text, text
    assert snapshot(lab_copy) == before


def test_replaced_ca_certificate_refuses(lab_copy: Path, pki_playbook: Path) -> None:
    # Any other certificate in ca.crt's place: here the broker's, which has another key and fingerprint.
    pki = lab_copy / "pki"
    shutil.copyfile(pki / "servers" / "lab-cloud-01.crt", pki / "ca" / "ca.crt")
    before = snapshot(lab_copy)
    result = run_pki(lab_copy, pki_playbook)
    assert result.returncode != 0
    text = output(result)
    assert "is not the CA recorded in" in text and "Restore" in text, text
    assert snapshot(lab_copy) == before


def test_replaced_ca_key_refuses(lab_copy: Path, pki_playbook: Path) -> None:
    # A new key, encrypted with the right passphrase: only the recorded public key tells it apart.
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-aes256",
         "-pass", f"file:{lab_copy}/secrets/ca_passphrase", "-out", f"{lab_copy}/pki/ca/ca.key"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    before = snapshot(lab_copy)
    result = run_pki(lab_copy, pki_playbook)
    assert result.returncode != 0
    text = output(result)
    assert "ca/ca.key is not the CA recorded in" in text and "Restore" in text, text
    assert snapshot(lab_copy) == before


def test_unset_lab_dir_refuses(pki_playbook: Path) -> None:
    result = run_pki(None, pki_playbook)
    assert result.returncode != 0
    assert "IRONLINK_LAB_DIR is not set" in output(result), output(result)


def test_missing_secrets_refuse_and_create_nothing(pki_playbook: Path, tmp_path: Path) -> None:
    lab_dir = tmp_path / "empty-lab"
    lab_dir.mkdir()
    result = run_pki(lab_dir, pki_playbook)
    assert result.returncode != 0
    text = output(result)
    assert f"{lab_dir}/secrets/ca_passphrase is missing" in text and "scripts/lab/lab-init.sh" in text, text
    assert list(lab_dir.iterdir()) == []


@pytest.mark.parametrize("playbook", ["pki", "cloud"])
def test_missing_ca_refuses_and_creates_nothing(lab_copy: Path, pki_playbook: Path, playbook: str) -> None:
    shutil.rmtree(lab_copy / "pki")
    before = snapshot(lab_copy)
    args = (
        ("playbooks/cloud.yml", "--tags", "fleet_pki", "--limit", "localhost")
        if playbook == "cloud"
        else (pki_playbook,)
    )
    result = run_pki(lab_copy, *args)
    assert result.returncode != 0
    text = output(result)
    pki = lab_copy / "pki"
    assert f"missing {pki}/fleet.json, {pki}/ca/ca.key, {pki}/ca/ca.crt" in text, text
    assert "playbooks/fleet_init.yml" in text, text
    assert snapshot(lab_copy) == before
    assert not (lab_copy / "pki").exists()


def test_half_a_ca_is_never_completed(lab_copy: Path) -> None:
    (lab_copy / "pki" / "ca" / "ca.key").unlink()
    before = snapshot(lab_copy)
    result = run_pki(lab_copy, INIT_PLAYBOOK)
    assert result.returncode != 0
    text = output(result)
    assert f"missing {lab_copy}/pki/ca/ca.key" in text and "restore" in text, text
    assert snapshot(lab_copy) == before


def test_init_records_a_ca_from_before_fleet_json_only_under_its_own_name(
    lab_copy: Path, pki_playbook: Path
) -> None:
    recorded = lab_copy / "pki" / "fleet.json"
    original = recorded.read_bytes()
    recorded.unlink()
    before = snapshot(lab_copy)
    refused = run_pki(lab_copy, pki_playbook)
    assert refused.returncode != 0 and "missing " + str(recorded) in output(refused), output(refused)
    renamed = run_pki(lab_copy, INIT_PLAYBOOK, "-e", "fleet_pki_name=ux-inv-base")
    assert renamed.returncode != 0
    expected = (
        'is "Ironlink fleet CA (lab)", but this configuration names the CA "Ironlink fleet CA (ux-inv-base)"'
    )
    assert expected in output(renamed), output(renamed)
    assert snapshot(lab_copy) == before
    adopted = run_pki(lab_copy, INIT_PLAYBOOK)
    assert adopted.returncode == 0, output(adopted)
    assert recorded.read_bytes() == original
    assert snapshot(lab_copy) == {**before, "pki/fleet.json": original}
