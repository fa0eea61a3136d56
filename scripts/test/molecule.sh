#!/usr/bin/env bash
# Run Molecule scenarios, IRONLINK_MOLECULE_JOBS at a time (default 2: most of a scenario is apt downloads and
# boot waits, not CPU). Each scenario logs to .cache/molecule/<name>.log; a failed one's log is printed whole.
# Usage: scripts/test/molecule.sh [scenario ...]   (default: every molecule/*/molecule.yml)
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${IRONLINK_MOLECULE_JOBS:-2}
logs=.cache/molecule
mkdir -p "$logs"
if (($#)); then scenarios=("$@"); else
  mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
  # The longest scenario first, so it does not start last and run alone.
  mapfile -t scenarios < <(printf '%s\n' "${scenarios[@]}" | grep -x cloud_fleet; printf '%s\n' "${scenarios[@]}" | grep -vx cloud_fleet)
fi

# A scenario's hosts have fixed names: two runs of one scenario at once (two shells, two developers on one
# machine) would destroy each other's hosts, so each scenario runs under its own lock and the second waits.
run_one() {
  local s=$1 start rc=0
  start=$(date +%s)
  {
    flock 9
    molecule test -s "$s" >"$logs/$s.log" 2>&1 || rc=$?
    # This run's own copy: once the lock is released, the next run of the scenario rewrites $s.log.
    cp "$logs/$s.log" "$results.$s.log"
  } 9>"$logs/$s.lock"
  echo "$s $rc $(( $(date +%s) - start ))" >>"$results"
}
export -f run_one
results=$(mktemp "$logs/results.XXXXXX")
trap 'rm -f "$results" "$results".*.log' EXIT
export logs results

echo "molecule: ${scenarios[*]} ($jobs at a time)"
printf '%s\n' "${scenarios[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {}

failed=0
while read -r s rc secs; do
  if [[ $rc == 0 ]]; then echo "molecule $s: passed in ${secs} s"
  else
    failed=1
    echo "molecule $s: FAILED (rc $rc) in ${secs} s; its log:"
    sed 's/^/    /' "$results.$s.log"
  fi
done < <(sort "$results")
exit "$failed"
