#!/usr/bin/env bash
# The lab's init step (docs/pki.md, "Initialising a fleet"): write the lab's secrets into $IRONLINK_LAB_DIR/secrets/
# where a file is missing, then run playbooks/fleet_init.yml, which creates the lab's fleet CA only if it has none.
# Idempotent: existing secrets and an existing CA are never replaced. `make lab` runs it first. Nothing else creates
# lab secrets: the inventory stops with the missing path instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lab/lab-env.sh
source scripts/lab/lab-env.sh

secrets=$LAB_DIR/secrets
install -d -m 0700 "$secrets"
# name:bytes of randomness (base64url): the passphrases need 16 characters, the seed 32 (roles/fleet_pki preflight).
for spec in ca_passphrase:24 key_passphrase:24 mqtt_password_seed:36 influxdb_admin:18; do
  name=${spec%%:*}
  [[ -s $secrets/$name ]] && continue
  (umask 077 && python3 -c 'import secrets, sys; print(secrets.token_urlsafe(int(sys.argv[1])))' "${spec##*:}" \
    >"$secrets/$name")
  echo "lab secret created: $secrets/$name"
done

ansible-playbook -i inventories/lab playbooks/fleet_init.yml "$@"
