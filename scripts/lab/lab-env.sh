# shellcheck shell=bash
# Shared settings of the lab scripts (sourced, from the project root, with the venv on PATH).
# IRONLINK_LAB_DIR is where the lab keeps its SSH key, secrets and PKI; the lab inventory reads it from the environment
# (inventories/lab/group_vars/all/lab.yml), so it is exported, and absolute.
IRONLINK_LAB_DIR=${IRONLINK_LAB_DIR:-${LAB_DIR:-$PWD/.lab}}
[[ $IRONLINK_LAB_DIR == /* ]] || IRONLINK_LAB_DIR=$PWD/$IRONLINK_LAB_DIR
export IRONLINK_LAB_DIR
LAB_DIR=$IRONLINK_LAB_DIR
LAB_KEY=$LAB_DIR/ssh/id_ed25519
LAB_NETWORK=ironlink-lab
LAB_SUBNET=10.89.77.0/24
IRONLINK_TEST_IMAGE=${IRONLINK_TEST_IMAGE:-localhost/ironlink-debian:bookworm}
export IRONLINK_TEST_IMAGE
LAB_SSH=(ssh -n -i "$LAB_KEY" -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no
  -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)

# "<inventory host> <address>" for every container of the lab inventory, or of one group ($1): the hosts with an
# ansible_host (not localhost, the controller of group controller).
lab_hosts() {
  ansible-inventory -i inventories/lab --list |
    python3 -c 'import json,sys; d=json.load(sys.stdin); hv=d["_meta"]["hostvars"]
def members(g): return d.get(g, {}).get("hosts", []) + [h for c in d.get(g, {}).get("children", []) for h in members(c)]
for h in sorted(set(members(sys.argv[1]))):
    if "ansible_host" in hv.get(h, {}): print(h, hv[h]["ansible_host"])' "${1:-all}"
}

lab_wait_ssh() {
  local ip=$1 i
  for i in $(seq 1 60); do
    "${LAB_SSH[@]}" "root@$ip" true 2>/dev/null && return 0
    sleep 1
  done
  echo "ssh to $ip did not answer within 60 s" >&2
  return 1
}
