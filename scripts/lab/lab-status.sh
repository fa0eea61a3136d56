#!/usr/bin/env bash
# Print what the lab converged and how to reach it.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lab/lab-env.sh
source scripts/lab/lab-env.sh
echo
echo "Ironlink lab: gateways converged from inventories/lab"
printf '%-12s %-14s %-34s %s\n' HOST ADDRESS IDENTITY "HOSTNAME / FIREWALL"
while read -r host ip; do
  id=$("${LAB_SSH[@]}" "root@$ip" cat /etc/ironlink/identity.json 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("{client_id}/{site_id}/{gateway_id} ({environment})".format(**d))' ||
    echo "not converged")
  hn=$("${LAB_SSH[@]}" "root@$ip" hostname 2>/dev/null || echo "?")
  fw=$("${LAB_SSH[@]}" "root@$ip" 'nft list table inet ironlink >/dev/null 2>&1 && echo on || echo off' 2>/dev/null || echo "?")
  printf '%-12s %-14s %-34s %s / %s\n' "$host" "$ip" "$id" "$hn" "$fw"
done < <(lab_hosts)
echo
echo "Reach a gateway:  ssh -i .lab/ssh/id_ed25519 -o UserKnownHostsFile=/dev/null root@<address>"
echo "Re-converge:      make lab          (a second run reports changed=0)"
echo "Remove the lab:   make lab-down"
