#!/usr/bin/env bash
# End-to-end tests: the official `openai` Python SDK drives `tollgate serve` (in front of
# `tollgate mock`) with an unmodified LiteLLM config.yaml.
#
#   bash tests/e2e/run.sh [pytest args…]      # from any directory
#
# Creates tests/e2e/.venv on first use (python3 + pip, PyPI reachable), builds the binary with
# `cargo build -p tollgate` unless TOLLGATE_BIN points at one, then runs pytest on tests/e2e.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.txt"

python="${PYTHON:-python3}"

# The dashboard's browser tests drive Debian's chromium (Playwright may not download a browser).
# Installed once, as root with apt; elsewhere (no root, no apt) those tests say what is missing.
chromium_bin="${TOLLGATE_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium_bin" ]] && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "e2e: installing chromium (apt-get) for the dashboard's browser tests" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
        || echo "e2e: could not install chromium; the dashboard's browser tests will fail" >&2
fi
export TOLLGATE_CHROMIUM="$chromium_bin"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "e2e: $python not found; install Python 3.9+ (or set PYTHON=/path/to/python3)" >&2
    exit 2
fi

# (Re)create the venv when it is missing, broken, or was built from other requirements.
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$req" "$stamp"; then
    echo "e2e: setting up $venv" >&2
    rm -rf "$venv"
    if ! "$python" -m venv "$venv"; then
        echo "e2e: '$python -m venv' failed; on Debian/Ubuntu install the python3-venv package" >&2
        rm -rf "$venv"
        exit 2
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
fi

if [[ -z "${TOLLGATE_BIN:-}" ]]; then
    (cd "$root" && cargo build -p tollgate)
    TOLLGATE_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/tollgate"
fi
case "$TOLLGATE_BIN" in
    /*) ;;
    *) TOLLGATE_BIN="$PWD/$TOLLGATE_BIN" ;;
esac
if [[ ! -x "$TOLLGATE_BIN" ]]; then
    echo "e2e: TOLLGATE_BIN=$TOLLGATE_BIN is not an executable" >&2
    exit 2
fi
export TOLLGATE_BIN

cd "$root"
exec "$venv/bin/python" -m pytest -q tests/e2e "$@"
