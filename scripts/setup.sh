#!/usr/bin/env bash
# Install what the lab and the tests need on a fresh Debian 12 machine (root): apt packages, the podman
# configuration and the test image. The Python venv is the Makefile's job (`make venv`).
set -euo pipefail
cd "$(dirname "$0")/.."
# mosquitto and influxdb: the real brokers and databases the integration tests start on loopback ports
# (podman, runc, netavark and aardvark-dns are scripts/testbed/podman-setup.sh's: the lab needs them too)
# shellcheck: ansible-test sanity skips its shellcheck test with only a warning when the program is missing
pkgs=(mosquitto mosquitto-clients influxdb openssl python3-venv shellcheck)
need=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
  echo "apt: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
scripts/testbed/build-image.sh
