#!/usr/bin/env bash
# Install podman + runc and the containers.conf that works on these machines (see ../shared/ENVIRONMENT.md):
# crun fails on hybrid cgroups, and raising RLIMIT_NOFILE is not permitted (no CAP_SYS_RESOURCE).
set -euo pipefail
need=()
for pkg in podman runc debootstrap uidmap; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
conf=/etc/containers/containers.conf
want='[containers]
default_ulimits = []

[engine]
runtime = "runc"'
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$want" ]]; then
  mkdir -p /etc/containers
  printf '%s\n' "$want" > "$conf"
fi
