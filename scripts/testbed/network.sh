#!/usr/bin/env bash
# Create a podman network with a fixed subnet unless it exists: scenarios that reach hosts at fixed addresses
# (real SSH) run this as Molecule's dependency step, because the podman driver's schema has no `subnet`.
# Usage: network.sh NAME SUBNET
set -euo pipefail
podman network exists "$1" || podman network create --subnet "$2" "$1" >/dev/null
