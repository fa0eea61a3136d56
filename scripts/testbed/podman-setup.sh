#!/usr/bin/env bash
# Install podman + runc and the containers.conf that works on these machines (see ../shared/ENVIRONMENT.md):
# crun fails on hybrid cgroups, and raising RLIMIT_NOFILE is not permitted (no CAP_SYS_RESOURCE).
# netavark and aardvark-dns are named because Debian's podman 4.3 does not pull them in: without them it falls
# back to CNI, where container names do not resolve on user networks (multi-host scenarios then fail with
# "Name or service not known"). netavark sets up container networks with the iptables command, which nothing
# depends on (seen on a fresh machine: "netavark: No such file or directory" at container creation).
# The backend is checked after install, so that failure is loud and early.
set -euo pipefail
"$(dirname "$0")/apt-install.sh" podman runc netavark aardvark-dns iptables debootstrap uidmap
conf=/etc/containers/containers.conf
want='[containers]
default_ulimits = []

[engine]
runtime = "runc"

[network]
network_backend = "netavark"'
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$want" ]]; then
  mkdir -p /etc/containers
  printf '%s\n' "$want" > "$conf"
fi
backend=$(podman info --format '{{.Host.NetworkBackend}}')
if [[ $backend != netavark ]]; then
  cat >&2 <<MSG
podman-setup: podman's network backend is '$backend', not netavark: container names would not resolve on the
test networks. This machine has CNI state from before netavark was installed. Fix: 'podman system reset -f'
(removes every container and image; the test image is rebuilt on the next run), then run this again.
MSG
  exit 1
fi
