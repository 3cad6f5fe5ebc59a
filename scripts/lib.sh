# Shared set-up steps for scripts/quickstart and scripts/test-all (sourced, not run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PYBLAHP_VENV:-$ROOT/.venv}"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root for: $*" >&2; return 1; fi
}

# Print those of the given Debian packages that are not installed, one a line.
missing_debs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

# Install Debian packages that are not installed yet (no apt-get run when nothing is missing).
ensure_debs() {
    local missing=()
    mapfile -t missing < <(missing_debs "$@")
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Like ensure_debs, for packages with daemons (Slurm, munge, MariaDB): their postinst scripts would
# start system-wide instances through invoke-rc.d, which a policy-rc.d answering 101 ("action
# forbidden") prevents. The tests start private daemons of their own; there is no init system in
# CI containers anyway. A policy-rc.d that was already there is left alone.
ensure_debs_no_daemons() {
    local missing=()
    mapfile -t missing < <(missing_debs "$@")
    [ ${#missing[@]} -eq 0 ] && return 0
    local policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
        ensure_debs "${missing[@]}"
        return
    fi
    # a subshell, so that its EXIT trap removes our policy-rc.d on failure or interruption too
    (
        trap 'as_root rm -f "$policy"' EXIT
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        ensure_debs "${missing[@]}"
    )
}

pick_python() {
    local py
    for py in "${PYTHON:-}" python3; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null && "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
            command -v "$py"; return 0
        fi
    done
    return 1
}

# Create the virtualenv and install pyblahp (with the given extras) into it.
setup_venv() {
    local extras="${1:-}"
    local py
    if ! py="$(pick_python)"; then
        ensure_debs python3 python3-venv python3-pip
        py="$(pick_python)" || { echo "no Python >= 3.9 with venv found" >&2; return 1; }
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating $VENV with $py"
        "$py" -m venv "$VENV"
    fi
    echo "==> installing pyblahp${extras:+[$extras]} into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$ROOT${extras:+[$extras]}"
}
