#!/usr/bin/env bash
# Idempotent setup: a virtualenv with torch (CPU build unless TRAINBOARD_TORCH names another),
# the project, and the page's npm packages. `--test` adds what the tests need: the test extra,
# the example plugin package, Debian's chromium for Playwright, and slurm-wlm, munge and
# iproute2 for the Slurm and network-namespace tests. Quiet when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_REQUIREMENT="${TRAINBOARD_TORCH:-torch==2.13.0}"
PYTHON="${PYTHON:-python3}"
VENV=.venv
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

say() { printf '[setup] %s\n' "$*"; }
pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true; }
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# torch first, pinned: an unpinned torch would pull the newest build with GBs of CUDA packages.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    say "installing $TORCH_REQUIREMENT"
    # Unquoted on purpose: TRAINBOARD_TORCH may carry pip options (an --index-url, say).
    # shellcheck disable=SC2086
    pip_install $TORCH_REQUIREMENT
    # (numpy comes with the project next; torch warns about its absence meanwhile)
    "$VENV/bin/python" -c "import torch" 2>/dev/null || { echo "[setup] torch failed to install" >&2; exit 1; }
fi

extras=""
[ $with_tests = 1 ] && extras="[test]"
want="$(sha256sum pyproject.toml | cut -c1-16)$extras"
if ! stamp_ok .setup-stamp-python "$want"; then
    say "installing trainboard$extras"
    pip_install -e ".$extras"
    "$VENV/bin/python" -c "import trainboard.app" || { echo "[setup] trainboard failed to install" >&2; exit 1; }
    echo "$want" > .setup-stamp-python
fi

want="$(sha256sum frontend/package-lock.json | cut -c1-16)"
if [ ! -d frontend/node_modules/uplot ] || ! stamp_ok .setup-stamp-npm "$want"; then
    say "installing the page's npm packages"
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" > .setup-stamp-npm
fi

if [ $with_tests = 1 ]; then
    want="$(cat tests/plugin_pkg/pyproject.toml tests/plugin_pkg/*.py | sha256sum | cut -c1-16)"
    if ! stamp_ok .setup-stamp-plugin "$want"; then
        say "installing the example plugin package used by the tests"
        pip_install ./tests/plugin_pkg
        echo "$want" > .setup-stamp-plugin
    fi
    # Debian packages, each only when its command is missing: chromium for the browser tests,
    # slurm-wlm and munge for the Slurm cluster the launcher's test brings up, iproute2 (`ip`)
    # for the network-namespace test.
    packages=""
    [ -x /usr/bin/chromium ] || packages="$packages chromium"
    command -v slurmctld >/dev/null || [ -x /usr/sbin/slurmctld ] || packages="$packages slurm-wlm"
    command -v munged >/dev/null || [ -x /usr/sbin/munged ] || packages="$packages munge"
    command -v ip >/dev/null || [ -x /usr/sbin/ip ] || packages="$packages iproute2"
    if [ -n "$packages" ]; then
        say "installing Debian's$packages for the tests"
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        # apt's output only when it fails (debconf chatters on stderr even when all goes well).
        # shellcheck disable=SC2086
        if ! out=$($SUDO apt-get update -qq 2>&1 &&
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $packages 2>&1); then
            printf '%s\n' "$out" >&2
            echo "[setup] apt-get could not install$packages" >&2
            exit 1
        fi
    fi
fi
