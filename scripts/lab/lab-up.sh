#!/usr/bin/env bash
# `make lab`: initialise the lab once (scripts/lab/lab-init.sh: its secrets, then playbooks/fleet_init.yml for the fleet
# CA; both only if missing), start the hosts of inventories/lab as podman systemd containers reached over real SSH,
# bring the gateways up with playbooks/site_bringup.yml and the cloud host with playbooks/cloud.yml (both logged to
# $IRONLINK_LAB_DIR/last-run.log), then print scripts/lab/lab-status.sh. Safe to re-run: it converges, changing
# nothing. Extra arguments go to both ansible-playbook runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=scripts/lab/lab-env.sh
source scripts/lab/lab-env.sh

scripts/lab/lab-init.sh
scripts/testbed/build-image.sh
podman network exists "$LAB_NETWORK" ||
  podman network create --subnet "$LAB_SUBNET" --label ironlink-lab=1 "$LAB_NETWORK" >/dev/null

mkdir -p "$LAB_DIR/ssh"
[[ -f $LAB_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C ironlink-lab -f "$LAB_KEY"

gateways=$(lab_hosts gateways | cut -d' ' -f1)
while read -r host ip; do
  if ! podman container exists "$host"; then
    echo "starting $host ($ip)"
    # Gateways need NET_ADMIN (nftables) and SYS_ADMIN (dockerd); cloud hosts get neither: with SYS_ADMIN in a
    # container, systemd's PrivateUsers= (the ingest units) fails instead of being skipped.
    caps=()
    grep -qx "$host" <<<"$gateways" && caps=(--cap-add NET_ADMIN,SYS_ADMIN)
    podman run -d --name "$host" --hostname "$host" --label ironlink-lab=1 \
      --network "$LAB_NETWORK" --ip "$ip" --systemd=always \
      "${caps[@]}" --no-hosts "$IRONLINK_TEST_IMAGE" /sbin/init </dev/null >/dev/null
  fi
  [[ $(podman inspect -f '{{.State.Running}}' "$host") == true ]] || podman start "$host" >/dev/null
  podman exec -i "$host" sh -c 'install -d -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys &&
    chmod 0600 /root/.ssh/authorized_keys' < "$LAB_KEY.pub"
  lab_wait_ssh "$ip"
done < <(lab_hosts)

ansible-playbook -i inventories/lab playbooks/site_bringup.yml "$@" | tee "$LAB_DIR/last-run.log"
ansible-playbook -i inventories/lab playbooks/cloud.yml "$@" | tee -a "$LAB_DIR/last-run.log"
scripts/lab/lab-status.sh
