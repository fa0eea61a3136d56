#!/usr/bin/env bash
# Print what the lab converged and how to reach it.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lab/lab-env.sh
source scripts/lab/lab-env.sh
echo
echo "Ironlink lab: gateways converged from inventories/lab (playbooks/site_bringup.yml)"
printf '%-12s %-14s %-34s %s\n' HOST ADDRESS IDENTITY "HOSTNAME / FIREWALL"
while read -r host ip; do
  id=$("${LAB_SSH[@]}" "root@$ip" cat /etc/ironlink/identity.json 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("{client_id}/{site_id}/{gateway_id} ({environment})".format(**d))' ||
    echo "not converged")
  hn=$("${LAB_SSH[@]}" "root@$ip" hostname 2>/dev/null || echo "?")
  fw=$("${LAB_SSH[@]}" "root@$ip" 'nft list table inet ironlink >/dev/null 2>&1 && echo on || echo off' 2>/dev/null || echo "?")
  printf '%-12s %-14s %-34s %s / %s\n' "$host" "$ip" "$id" "$hn" "$fw"
done < <(lab_hosts gateways)
echo
echo "Ironlink lab: cloud host converged from inventories/lab (playbooks/cloud.yml)"
while read -r host ip; do
  units=$("${LAB_SSH[@]}" "root@$ip" systemctl is-active mosquitto influxdb ironlink-ingest@1 ironlink-ingest@2 2>/dev/null |
    paste -sd' ' || true)
  printf '%-12s %-14s mosquitto influxdb ingest@1 ingest@2: %s\n' "$host" "$ip" "${units:-not reachable}"
done < <(lab_hosts cloud)
echo
echo "Reach a host:      ssh -i $LAB_DIR/ssh/id_ed25519 -o UserKnownHostsFile=/dev/null root@<address>"
echo "Lab secrets, PKI: $LAB_DIR/secrets/, $LAB_DIR/pki/ (fleet CA: $LAB_DIR/pki/ca/ca.crt; broker TLS on <cloud address>:8883)"
echo "Re-converge:       make lab          (a second run reports changed=0)"
echo "Remove the lab:    make lab-down"
