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

# Grid Engine's postinst asks debconf questions: answer them (a cell 'default' on localhost;
# the tests build private cells of their own, tests/clusters/sge-up.sh) before installing it.
preseed_gridengine() {
    [ -z "$(missing_debs gridengine-master gridengine-exec gridengine-client)" ] && return 0
    ensure_debs debconf
    printf '%s\n' \
        'gridengine-common shared/gridengineconfig boolean true' \
        'gridengine-common shared/gridenginecell string default' \
        'gridengine-common shared/gridenginemaster string localhost' | as_root debconf-set-selections
}

# slurm-wlm-torque (PBS commands over Slurm) conflicts with gridengine-client: both own
# /usr/bin/qsub. Unpack it into a private directory instead of installing it, so that the PBS
# adapter's smoke test and Grid Engine run in one pass. Its qsub runs ${FindBin::Bin}/sbatch,
# so the Slurm commands it calls are linked next to it. Prints the directory of the commands.
private_pbs_over_slurm() {
    local dest="$1"
    ensure_debs perl libslurm-perl libslurmdb-perl libswitch-perl slurm-client
    local want
    want="$(apt-cache policy slurm-wlm-torque | awk '/Candidate:/ {print $2}')"
    if [ ! -x "$dest/usr/bin/qsub" ] || [ "$(cat "$dest/version" 2>/dev/null)" != "$want" ]; then
        local dl
        dl="$(mktemp -d)"
        echo "==> unpacking slurm-wlm-torque $want into $dest" >&2
        (cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root slurm-wlm-torque >&2)
        rm -rf "$dest"
        mkdir -p "$dest"
        dpkg-deb -x "$dl"/slurm-wlm-torque_*.deb "$dest"
        rm -rf "$dl"
        echo "$want" > "$dest/version"
    fi
    local cmd
    for cmd in salloc sbatch srun scancel scontrol squeue sacct; do
        ln -sfn "/usr/bin/$cmd" "$dest/usr/bin/$cmd"
    done
    echo "$dest/usr/bin"
}
