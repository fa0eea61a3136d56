#!/usr/bin/env bash
# Install the named Debian packages that are not installed. "Installed" means dpkg status "install ok installed":
# `dpkg -s` also succeeds for a package that was removed but left its configuration files (status
# "deinstall ok config-files"), and a setup that trusted it would skip a package whose program is gone.
# Usage: scripts/testbed/apt-install.sh PACKAGE...
set -euo pipefail
need=()
for pkg in "$@"; do
  [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "apt: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
