#!/usr/bin/env bash
# The project's virtualenv in $REPO/.venv with the package installed editable.
#   python.sh
# pip runs only when pyproject.toml changed since the last successful install
# (its hash is kept in the venv); delete $REPO/.venv/.pyproject.sha256 to force.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PYTHON="${TELEMETRY_PYTHON:-python3.11}"
STAMP="$VENV/.pyproject.sha256"

do_venv() {
    if "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
        note "exists: $VENV ($("$VENV/bin/python" --version))"
        return 0
    fi
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set TELEMETRY_PYTHON to a Python 3.11 interpreter)"
    # --clear: a venv whose interpreter is gone or of another version is rebuilt.
    "$PYTHON" -m venv --clear "$VENV"
    rm -f "$STAMP"
    note "created $VENV ($("$VENV/bin/python" --version))"
}

do_pip() {
    local hash
    hash=$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)
    if [[ -f $STAMP && $(<"$STAMP") == "$hash" ]]; then
        note "up to date (pyproject.toml unchanged)"
        return 0
    fi
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -e "${REPO}[dev]"
    echo "$hash" >"$STAMP" # only after success
    note "installed -e ${REPO}[dev]"
}

step "python: virtualenv" do_venv
step "python: pip install -e .[dev]" do_pip
