#!/usr/bin/env bash
# Build the Debian bookworm systemd test image used by Molecule and the local lab, once: skipped when present.
# Usage: scripts/testbed/build-image.sh [--force]
set -euo pipefail
IMAGE=${IRONLINK_TEST_IMAGE:-localhost/ironlink-debian:bookworm}
here=$(cd "$(dirname "$0")" && pwd)
"$here/podman-setup.sh"
if [[ ${1:-} != --force ]] && podman image exists "$IMAGE"; then
  echo "test image $IMAGE present"
  exit 0
fi
rootfs=$(mktemp -d /var/tmp/ironlink-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "building $IMAGE (debootstrap, about 80 s)"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,python3,python3-apt,openssh-server,sudo,iproute2,ca-certificates \
  bookworm "$rootfs" >/dev/null
# A real Debian install has /etc/hosts; minbase does not (hosts run with --no-hosts, so this file is theirs).
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$rootfs/etc/hosts"
# The image boots to multi-user with sshd; keys are per container (generated at first boot below).
rm -f "$rootfs"/etc/ssh/ssh_host_*
cat > "$rootfs/etc/systemd/system/ssh-keygen-host.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/ssh-keygen-host.service \
  "$rootfs/etc/systemd/system/multi-user.target.wants/ssh-keygen-host.service"
# Package lists stay, as on a real Debian or Raspberry Pi OS install (an empty lists/ directory looks like a
# fresh cache to apt's cache_valid_time); downloaded .debs go.
chroot "$rootfs" apt-get update -qq
rm -rf "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | podman import --change 'CMD ["/sbin/init"]' - "$IMAGE" >/dev/null
echo "built $IMAGE"
