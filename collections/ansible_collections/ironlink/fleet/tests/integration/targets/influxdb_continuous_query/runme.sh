#!/usr/bin/env bash
# Copyright (c) Ironlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# A real influxd (auth enabled) in a temporary directory on free loopback ports, the target's playbook against
# it, and influxd stopped by its PID whatever happens. The playbook waits for the API itself (until/retries).
set -euo pipefail

influxd=$(command -v influxd || true)
if [[ -z $influxd ]]; then
  # There is no skip: a missing server must not pass as a green run (scripts/setup.sh installs influxdb).
  echo "influxdb_continuous_query: influxd (InfluxDB 1.x) is not installed" >&2
  exit 1
fi

work=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
rpc_port=$(free_port)
cat >"$work/influxdb.conf" <<CONF
reporting-enabled = false
bind-address = "127.0.0.1:${rpc_port}"
[meta]
  dir = "${work}/meta"
  retention-autocreate = false
[data]
  dir = "${work}/data"
  wal-dir = "${work}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:${http_port}"
  auth-enabled = true
  log-enabled = false
CONF
"$influxd" run -config "$work/influxdb.conf" >"$work/influxd.log" 2>&1 &
pid=$!

# The admin password of this throwaway server: random per run, never written anywhere but the server's meta dir.
admin_password=$(python -c 'import secrets; print(secrets.token_urlsafe(18))')
if ! ansible-playbook -i localhost, -c local runme.yml \
  -e "influxdb_port=${http_port}" -e "influxdb_admin_password=${admin_password}" "$@"; then
  echo "--- influxd log" >&2
  cat "$work/influxd.log" >&2
  exit 1
fi
