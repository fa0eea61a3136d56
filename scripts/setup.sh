#!/usr/bin/env bash
# Install what the lab and the tests need on a fresh Debian 12 machine (root): apt packages, the podman
# configuration and the test image. The Python venv is the Makefile's job (`make venv`).
set -euo pipefail
cd "$(dirname "$0")/.."
# mosquitto and influxdb: the real brokers and databases the integration tests start on loopback ports
# (podman, runc, netavark and aardvark-dns are scripts/testbed/podman-setup.sh's: the lab needs them too)
# and shellcheck, because ansible-test sanity skips its shellcheck test with only a warning when the program is missing
pkgs=(mosquitto mosquitto-clients influxdb openssl python3-venv shellcheck)
scripts/testbed/apt-install.sh "${pkgs[@]}"
scripts/testbed/build-image.sh
