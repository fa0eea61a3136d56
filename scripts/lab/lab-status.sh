#!/usr/bin/env bash
# Print what an inventory's hosts converged: each gateway's identity, hostname and firewall (playbooks/site_bringup.yml)
# and the services of each broker, storage and ingest host (playbooks/cloud.yml). Read-only.
# Usage: scripts/lab/lab-status.sh [INVENTORY]   (default: $INVENTORY, else inventories/lab; make lab-status
# INVENTORY=<path>). The hosts are reached through Ansible with the inventory's own connection settings (user, key,
# become), so a copy of the lab inventory and a real fleet's inventory work alike; no vault password is needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lab/lab-env.sh
source scripts/lab/lab-env.sh
inventory=${1:-${INVENTORY:-inventories/lab}}
[[ -e $inventory ]] || { echo "lab-status: no inventory at $inventory" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ansible-inventory -i "$inventory" --list >"$out/inventory.json"
# One ad-hoc command per group, results as JSON. A host that is down or not converged yet is reported as such: the
# exit status of ansible (4 unreachable, 2 failed) is not this script's.
probe() {
  ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=ansible.posix.json \
    ansible -i "$inventory" "$1" -m ansible.builtin.shell -a "$2" >"$out/$3.json" 2>"$out/$3.err" || true
}
probe gateways 'cat /etc/ironlink/identity.json || echo "{}"; echo "#"; hostname
  nft list table inet ironlink >/dev/null 2>&1 && echo on || echo off' gateways
# shellcheck disable=SC2016  # expanded by the remote shell
probe 'brokers:storage:ingest' 'for u in mosquitto influxdb; do echo "$u $(systemctl is-active "$u")"; done
  systemctl list-units --all --plain --no-legend "ironlink-ingest@*.service" | while read -r u _ a _; do
    echo "${u%.service} $a"; done' cloud

python3 - "$inventory" "$out" "$LAB_DIR" <<'EOF'
import json, pathlib, sys

inventory, out, lab_dir = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
inv = json.loads((out / "inventory.json").read_text())
hostvars = inv["_meta"]["hostvars"]


def members(group):
    g = inv.get(group, {})
    return sorted(set(g.get("hosts", [])).union(*[members(c) for c in g.get("children", [])]))


def results(name):
    try:
        data = json.loads((out / f"{name}.json").read_text())
        return data["plays"][0]["tasks"][0]["hosts"]
    except (ValueError, LookupError):
        return {}


def failure(result):
    if not result:
        return "no answer"
    if result.get("unreachable"):
        return "unreachable"
    return None if result.get("rc") == 0 else "failed: " + (result.get("msg") or result.get("stderr", ""))[:60]


def address(host):
    return str(hostvars.get(host, {}).get("ansible_host", host))


cloud_hosts = sorted(set(members("brokers")) | set(members("storage")) | set(members("ingest")))
W = max([12] + [len(h) for h in members("gateways") + cloud_hosts])  # the host column
A = max([14] + [len(address(h)) for h in members("gateways") + cloud_hosts])  # the address column


print(f"\nGateways of {inventory} (playbooks/site_bringup.yml)")
print(f"{'HOST':<{W}} {'ADDRESS':<{A}} {'IDENTITY':<34} HOSTNAME / FIREWALL")
gateways = results("gateways")
for host in members("gateways"):
    result = gateways.get(host, {})
    problem = failure(result)
    if problem:
        print(f"{host:<{W}} {address(host):<{A}} {problem}")
        continue
    identity, _, rest = result["stdout"].partition("\n#\n")
    hostname, firewall = (rest.splitlines() + ["?", "?"])[:2]
    ids = json.loads(identity or "{}")
    shown = "{client_id}/{site_id}/{gateway_id} ({environment})".format(**ids) if ids else "not converged"
    print(f"{host:<{W}} {address(host):<{A}} {shown:<34} {hostname} / {firewall}")
if not members("gateways"):
    print("(no hosts in group gateways)")

print(f"\nCloud hosts of {inventory} (playbooks/cloud.yml)")
cloud = results("cloud")
wanted = {"brokers": ["mosquitto"], "storage": ["influxdb"], "ingest": ["ironlink-ingest@"]}
for host in cloud_hosts:
    result = cloud.get(host, {})
    problem = failure(result)
    if problem:
        print(f"{host:<{W}} {address(host):<{A}} {problem}")
        continue
    states = dict(line.split(" ", 1) for line in result["stdout"].splitlines() if " " in line)
    units = [
        f"{unit.removeprefix('ironlink-')} {state}"
        for group, prefixes in wanted.items()
        if host in members(group)
        for unit, state in states.items()
        if any(unit == p or (p.endswith("@") and unit.startswith(p)) for p in prefixes)
    ]
    if host in members("ingest") and not any(u.startswith("ingest@") for u in units):
        units.append("ingest@*: none")
    print(f"{host:<{W}} {address(host):<{A}} {', '.join(units)}")

print()
if any("lab_dir" in v for v in hostvars.values()):
    # The lab inventory (or a copy of it): its key, secrets and PKI are in IRONLINK_LAB_DIR.
    print(f"Reach a host:      ssh -i {lab_dir}/ssh/id_ed25519 -o UserKnownHostsFile=/dev/null root@<address>")
    print(f"Lab secrets, PKI:  {lab_dir}/secrets/, {lab_dir}/pki/ (fleet CA: {lab_dir}/pki/ca/ca.crt; broker TLS on"
          " <cloud address>:8883)")
if pathlib.Path(inventory).resolve() == pathlib.Path("inventories/lab").resolve():
    print("Re-converge:       make lab          (a second run reports changed=0)")
    print("Remove the lab:    make lab-down")
else:
    print(f"Re-converge:       ansible-playbook -i {inventory} playbooks/site_bringup.yml, then playbooks/cloud.yml")
EOF
