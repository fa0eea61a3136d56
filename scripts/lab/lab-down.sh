#!/usr/bin/env bash
# Remove the lab's containers and network (everything labelled ironlink-lab=1) and its generated key.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lab/lab-env.sh
source scripts/lab/lab-env.sh
command -v podman >/dev/null || { echo "podman not installed: no lab to remove"; exit 0; }
ids=$(podman ps -aq --filter label=ironlink-lab=1)
[[ -z $ids ]] || podman rm -f -t 5 $ids >/dev/null
podman network exists "$LAB_NETWORK" && podman network rm "$LAB_NETWORK" >/dev/null
rm -rf "$LAB_DIR"
echo "lab removed"
