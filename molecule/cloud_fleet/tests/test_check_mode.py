# SPDX-License-Identifier: GPL-3.0-or-later
"""A dry run of playbooks/cloud.yml tells the truth: nothing on the converged fleet, every change and restart
of a pending one, and never a build or a download on the controller."""

from __future__ import annotations

import json
import re

from fleet import EPHEMERAL, GW_B, host
from testsupport.playbook import ansible_playbook, output

CONVERGE = "molecule/cloud_fleet/converge.yml"
RECORD = "/opt/ironlink/ingest/installed.json"
WHEELHOUSE = EPHEMERAL / "wheelhouse"


def dry_run(*args: str) -> str:
    """cloud.yml --check against the scenario's hosts; must succeed. Returns stdout."""
    result = ansible_playbook(CONVERGE, "--check", *args)
    assert result.returncode == 0, output(result)[-6000:]
    return result.stdout


def results(stdout: str, title: str) -> list[str]:
    """The result lines of every TASK/RUNNING HANDLER block whose bracketed title ends with ``title``."""
    lines: list[str] = []
    for block in re.split(r"\n(?=(?:TASK|RUNNING HANDLER) \[)", stdout):
        header = block.split("]", 1)[0]
        if header.endswith(title):
            lines += [
                line for line in block.splitlines()[1:] if re.match(r"^(ok|changed|skipping|fatal):", line)
            ]
    return lines


def recap(stdout: str) -> dict[str, str]:
    """Host -> its PLAY RECAP line."""
    lines = stdout.split("PLAY RECAP", 1)[1].splitlines()
    return {line.split()[0]: line for line in lines if ":" in line and "ok=" in line}


def wheelhouse_state() -> dict[str, int]:
    """Every path under the controller's wheelhouse with its mtime: a build or download would change it."""
    return {str(p): p.stat().st_mtime_ns for p in WHEELHOUSE.rglob("*")}


def worker_starts() -> list[str]:
    cloud = host("cloud")
    return [
        cloud.check_output(f"systemctl show ironlink-ingest@{n}.service -P ExecMainStartTimestampMonotonic")
        for n in (1, 2)
    ]


def test_dry_run_of_the_converged_fleet_changes_nothing_and_builds_nothing() -> None:
    before = wheelhouse_state()
    stdout = dry_run()
    for name, line in recap(stdout).items():
        assert "changed=0" in line and "failed=0" in line, f"{name}: {line}"
    # The old install emptied and rebuilt the wheelhouse (and ran pip download) every run, --check included.
    assert wheelhouse_state() == before


def test_dry_run_of_a_revocation_and_new_ingest_code_shows_every_change_and_restart() -> None:
    """One pending revocation (gateway B) and an ingest host whose installed sources differ from the tree."""
    cloud = host("cloud")
    installed = cloud.file(RECORD).content_string
    stale = {**json.loads(installed), "sources_sha256": "0" * 64}
    cloud.check_output(f"printf '%s' '{json.dumps(stale)}' > {RECORD}")
    starts = worker_starts()
    before = wheelhouse_state()
    try:
        stdout = dry_run("-e", json.dumps({"fleet_pki_revoked_gateways": [GW_B]}))
    finally:
        cloud.check_output(f"printf '%s' '{installed}' > {RECORD}")
    # The revocation: the ACL, the re-signed CRL, its install on the broker and the restart that loads it.
    # One CRL per signing CA (two while a CA rotation is in progress): here the fleet CA's alone.
    signed = results(stdout, "fleet_pki : Sign the CRLs")
    assert signed == ["changed: [localhost] => (item=(censored due to no_log))"], stdout
    assert results(stdout, "cloud_broker : Install the ACL") == ["changed: [ironlink-cf-cloud]"], stdout
    assert results(stdout, "cloud_broker : Install the CRL") == ["changed: [ironlink-cf-cloud]"], stdout
    assert results(stdout, "cloud_broker : Restart mosquitto") == ["changed: [ironlink-cf-cloud]"], stdout
    # The ingest: the install it would do and both workers' restart, without building anything.
    assert results(stdout, "cloud_ingest : Record the installed sources") == ["changed: [ironlink-cf-cloud]"]
    assert results(stdout, "cloud_ingest : Restart ironlink-ingest") == [
        "changed: [ironlink-cf-cloud] => (item=1)",
        "changed: [ironlink-cf-cloud] => (item=2)",
    ], stdout
    assert wheelhouse_state() == before
    # A dry run: nothing happened on the host.
    assert worker_starts() == starts
