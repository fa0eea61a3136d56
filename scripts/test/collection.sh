#!/usr/bin/env bash
# Run the ironlink.fleet collection tests: ansible-test units, integration (targets that start their own real
# services, e.g. influxd), then sanity (Python 3.11 only).
#
# Usage: scripts/test/collection.sh [units|integration|sanity|all]   (default: all)
#
# ansible-test bootstraps pip in its venvs with a get-pip script it downloads from
# ci-files.testing.ansible.com, which is not reachable here. A stand-in in its cache directory
# does the same job offline-from-that-host: `python -m ensurepip`, then `python -m pip install`
# with the arguments ansible-test passes (minus --no-setuptools/--no-wheel, which pip rejects).
# Packages still come from PyPI.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
collection_root="${repo_root}/collections/ansible_collections/ironlink/fleet"
python_version="3.11"
what="${1:-all}"

if [[ -z "${VIRTUAL_ENV:-}" && -f "${repo_root}/.venv/bin/activate" ]]; then
    # shellcheck disable=SC1091
    source "${repo_root}/.venv/bin/activate"
fi

# ansible-test pins pip 24.2 (see ansible_test/_util/target/setup/requirements.py).
get_pip="${HOME}/.ansible/test/cache/get_pip_24_2.py"
if [[ ! -f "${get_pip}" ]]; then
    mkdir -p "$(dirname "${get_pip}")"
    cat >"${get_pip}" <<'EOF'
"""Stand-in for https://ci-files.testing.ansible.com/ansible-test/get-pip-24.2.py (written by
Ironlink scripts/test/collection.sh): ensurepip, then pip install with the same arguments."""

import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
EOF
    echo "collection.sh: created get-pip stand-in ${get_pip}"
fi

cd "${collection_root}"

run_units() {
    echo "== ansible-test units --python ${python_version} --venv"
    ansible-test units --python "${python_version}" --venv --color no
}

run_integration() {
    echo "== ansible-test integration --python ${python_version} --venv"
    ansible-test integration --python "${python_version}" --venv --color no
}

run_sanity() {
    echo "== ansible-test sanity --python ${python_version} --venv"
    ansible-test sanity --python "${python_version}" --venv --color no
}

start=${SECONDS}
case "${what}" in
    units) run_units ;;
    integration) run_integration ;;
    sanity) run_sanity ;;
    all)
        run_units
        run_integration
        run_sanity
        ;;
    *)
        echo "usage: $0 [units|integration|sanity|all]" >&2
        exit 2
        ;;
esac
echo "collection.sh: ${what} passed in $((SECONDS - start)) s"
