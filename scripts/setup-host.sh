#!/usr/bin/env bash
# Idempotent host set-up for mlorch. Every wait is bounded; every failure is one line.
#  - What the distribution lacks: the Docker engine (docker.io), docker-compose, debootstrap and a
#    Python new enough for pyproject.toml's requires-python with its venv module. Installed with
#    apt when root; otherwise one line per missing thing with the command that installs it.
#  - dockerd: started when not answering (systemd when present, else in the background).
#  - mlorch: `pip install -e` into its own virtual environment, never into the system Python
#    (Debian 12 and Ubuntu 24.04 mark theirs externally managed, PEP 668), and `mlorch` linked
#    into /usr/local/bin (root) or ~/.local/bin.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/python-env.sh
source scripts/python-env.sh

APT_TIMEOUT_S=1200
APT_LOCK_TIMEOUT_S=120
DOCKER_QUERY_TIMEOUT_S=20
ENGINE_START_TIMEOUT_S=60
VENV_TIMEOUT_S=300
PIP_TIMEOUT_S=1800

usage() {
    cat <<'EOF'
usage: scripts/setup-host.sh [--dev] [--skip-engine] [--no-apt] [--wheelhouse DIR]

  --dev             also install the test and lint tools (scripts/test.sh passes this)
  --skip-engine     only install mlorch: no Docker engine, docker-compose or debootstrap
  --no-apt          never install system packages; print what to install instead
  --wheelhouse DIR  install mlorch's Python packages from the wheels in DIR only, without a
                    package index (air-gapped hosts; same as PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR)

environment: MLORCH_VENV     the virtual environment (default: .venv in the checkout)
             MLORCH_PYTHON   the Python that builds it (default: the newest suitable python3.X)
             MLORCH_BIN_DIR  where the `mlorch` link goes (default: /usr/local/bin as root,
                             else ~/.local/bin)
EOF
}

say() { echo "setup-host: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}
is_root() { [ "$(id -u)" -eq 0 ]; }
on_unexpected_error() {
    trap - ERR
    say "error: line $2: \`$3\` failed (exit $1)"
    exit 1
}
trap 'on_unexpected_error $? $LINENO "$BASH_COMMAND"' ERR

dev=0 manage_engine=1 use_apt=1 wheelhouse=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dev) dev=1 ;;
        --skip-engine) manage_engine=0 ;;
        --no-apt) use_apt=0 ;;
        --wheelhouse)
            [ $# -ge 2 ] || { say "error: --wheelhouse needs a folder"; exit 2; }
            wheelhouse="$2"
            shift
            ;;
        --wheelhouse=*) wheelhouse="${1#*=}" ;;
        -h | --help) usage; exit 0 ;;
        *) say "error: unknown option $1 (see --help)"; exit 2 ;;
    esac
    shift
done
if [ -n "$wheelhouse" ]; then
    [ -d "$wheelhouse" ] || die "wheelhouse folder not found: $wheelhouse"
    wheelhouse="$(cd "$wheelhouse" && pwd)"
fi
can_apt=0
if [ "$use_apt" = 1 ] && is_root && command -v apt-get >/dev/null; then can_apt=1; fi

logs="$(mktemp -d "${TMPDIR:-/tmp}/mlorch-setup.XXXXXX")"
# run_logged NAME TIMEOUT CMD...: run CMD with a deadline, its output in $logs/NAME.log; on
# failure say in one line what failed, the line that tells why, and where the log is.
run_logged() {
    local name="$1" limit="$2" rc=0 why
    shift 2
    timeout "$limit" "$@" >"$logs/$name.log" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || return 0
    if [ "$rc" -eq 124 ]; then
        die "$name timed out after ${limit}s (log: $logs/$name.log)"
    fi
    # pip and apt say why on their last ERROR: / E: line (pip's may be indented: a subprocess).
    why="$(grep -E '^[[:space:]]*(ERROR:|E:)' "$logs/$name.log" | tail -n 1 || true)"
    [ -n "$why" ] || why="$(grep -v '^[[:space:]]*$' "$logs/$name.log" | tail -n 1 || true)"
    why="${why#"${why%%[![:space:]]*}"}"
    die "$name failed (exit $rc): ${why:-no output} (log: $logs/$name.log)"
}

# --- what is missing -----------------------------------------------------------------------------
apt_packages=()   # what apt installs when it may
missing_required=0
# missing required|optional WHAT PACKAGES...: queue PACKAGES for apt, or say what to run.
missing() {
    local kind="$1" what="$2"
    shift 2
    if [ "$can_apt" = 1 ]; then
        apt_packages+=("$@")
        return
    fi
    local sudo=""
    is_root || sudo="sudo "
    local how="${sudo}apt-get install $*"
    command -v apt-get >/dev/null || how="install it with the system's package manager (Debian/Ubuntu: $*)"
    if [ "$kind" = required ]; then
        missing_required=$((missing_required + 1))
        say "missing: $what — $how"
    else
        say "missing (optional, $kind): $what — $how"
    fi
}

docker_answers() { timeout "$DOCKER_QUERY_TIMEOUT_S" docker info >/dev/null 2>&1; }
has_compose() {
    command -v docker-compose >/dev/null \
        || timeout "$DOCKER_QUERY_TIMEOUT_S" docker compose version >/dev/null 2>&1
}

check_engine_tools() {
    if ! command -v docker >/dev/null || { is_root && ! command -v dockerd >/dev/null; }; then
        missing required "the Docker engine" docker.io
    fi
    has_compose || missing "for \`docker-compose -f compose.yaml\`" "docker-compose" docker-compose
    command -v debootstrap >/dev/null \
        || missing "to bootstrap the local base image" "debootstrap" debootstrap
    # --dev only: the tests render the comparison report in headless Chromium.
    [ "$dev" = 0 ] || command -v chromium >/dev/null \
        || missing "to render the comparison report in the tests" "chromium" chromium
}

venv="$(mlorch_venv)"
want="$(min_python)"
python=""

venv_is_usable() {
    local version
    [ -x "$venv/bin/python" ] || return 1
    version="$(python_version "$venv/bin/python")" || return 1
    version_at_least "$version" "$want" || return 1
    timeout "$PYTHON_QUERY_TIMEOUT_S" "$venv/bin/python" -c 'import pip' >/dev/null 2>&1
}

# Sets $python, or queues/says what is missing. Debian and Ubuntu ship ensurepip (which `venv`
# needs) in pythonX.Y-venv, so importing it tells whether that package is there.
check_python() {
    local found version path
    if found="$(find_python)"; then
        python="$found"
        version="$(python_version "$python")"
        if ! timeout "$PYTHON_QUERY_TIMEOUT_S" "$python" -c 'import ensurepip, venv' >/dev/null 2>&1
        then
            missing required "the venv module of $python (Python $version)" "python$version-venv"
        fi
        return
    fi
    read -r version path <<<"$found"
    if [ -n "${MLORCH_PYTHON:-}" ]; then
        [ "$version" != none ] || version="not runnable"
        die "MLORCH_PYTHON=$MLORCH_PYTHON is Python $version; mlorch needs $want or newer: point MLORCH_PYTHON at one"
    fi
    local seen="no python3 on PATH"
    [ "$version" = none ] || seen="python3 is $version at $path"
    if [ "$can_apt" = 1 ]; then
        need_python=1 # which packages, apt says after its update
        return
    fi
    local sudo=""
    is_root || sudo="sudo "
    missing_required=$((missing_required + 1))
    say "missing: Python $want or newer ($seen) — ${sudo}apt-get install python$want python$want-venv, or set MLORCH_PYTHON to a Python $want+ with its venv module"
}

# The apt packages of the oldest suitable Python the sources offer: the distribution's python3
# when new enough, else a versioned one (Ubuntu 22.04: python3.11).
apt_python_packages() {
    local candidate major minor last
    candidate="$(apt-cache policy python3 2>/dev/null \
        | sed -n 's/^ *Candidate: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')"
    if [ -n "$candidate" ] && version_at_least "$candidate" "$want"; then
        echo "python3 python3-venv"
        return 0
    fi
    IFS=. read -r major minor <<<"$want"
    last=$((minor + 5))
    for ((; minor <= last; minor++)); do
        if apt-cache show "python$major.$minor-venv" >/dev/null 2>&1; then
            echo "python$major.$minor python$major.$minor-venv"
            return 0
        fi
    done
    return 1
}

need_python=0
venv_ready=0
if venv_is_usable; then venv_ready=1; else check_python; fi
[ "$manage_engine" = 0 ] || check_engine_tools

if [ "$missing_required" -gt 0 ]; then
    die "$missing_required required thing(s) missing (listed above); install them and run this again"
fi

# --- apt (root) ----------------------------------------------------------------------------------
if [ "${#apt_packages[@]}" -gt 0 ] || [ "$need_python" = 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    say "apt: updating the package lists"
    run_logged apt-update "$APT_TIMEOUT_S" apt-get update -qq -o Acquire::http::Timeout=30
    if [ "$need_python" = 1 ]; then
        python_packages="$(apt_python_packages)" \
            || die "apt offers no Python $want or newer here: install one and set MLORCH_PYTHON to it"
        read -r -a more <<<"$python_packages"
        apt_packages+=("${more[@]}")
    fi
    available=()
    for package in "${apt_packages[@]}"; do
        if apt-cache show "$package" >/dev/null 2>&1; then
            available+=("$package")
        elif [ "$package" = docker.io ] || [[ "$package" == python* ]]; then
            die "apt knows no package $package here; install it by other means and run this again"
        else
            say "note: apt knows no package $package here; skipping it (optional)"
        fi
    done
    if [ "${#available[@]}" -gt 0 ]; then
        say "apt: installing ${available[*]}"
        run_logged apt-install "$APT_TIMEOUT_S" apt-get install -y -qq \
            -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT_S" "${available[@]}"
    fi
    if [ "$venv_ready" = 0 ]; then
        can_apt=0
        check_python
        [ "$missing_required" -eq 0 ] || die "Python $want with its venv module is still missing after apt"
    fi
fi

# --- Docker engine -------------------------------------------------------------------------------
engine_line=""
if [ "$manage_engine" = 1 ]; then
    if ! docker_answers; then
        is_root || die "the Docker engine is not answering: sudo systemctl start docker, and add $USER to the docker group (then log in again)"
        if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
            say "starting docker with systemd"
            run_logged systemctl-start-docker "$ENGINE_START_TIMEOUT_S" systemctl start docker
        else
            say "starting dockerd in the background (log: /var/log/mlorch-dockerd.log)"
            # A dockerd killed without clean-up leaves its pid file behind; dockerd refuses to start
            # while that pid belongs to any live process.
            if [ -f /var/run/docker.pid ] && ! pgrep -x dockerd >/dev/null; then
                rm -f /var/run/docker.pid
            fi
            nohup dockerd >/var/log/mlorch-dockerd.log 2>&1 &
        fi
        deadline=$((SECONDS + ENGINE_START_TIMEOUT_S))
        until docker_answers; do
            [ "$SECONDS" -lt "$deadline" ] \
                || die "dockerd did not answer within ${ENGINE_START_TIMEOUT_S}s; see /var/log/mlorch-dockerd.log"
            sleep 1
        done
    fi
    engine_line="engine $(timeout "$DOCKER_QUERY_TIMEOUT_S" docker version --format '{{.Server.Version}}'), "
fi

# --- the virtual environment and mlorch in it ----------------------------------------------------
if [ "$venv_ready" = 0 ]; then
    if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
        die "$venv exists and is not a virtual environment; move it away or set MLORCH_VENV"
    fi
    say "creating the virtual environment $venv (Python $(python_version "$python") from $python)"
    run_logged venv "$VENV_TIMEOUT_S" "$python" -m venv --clear "$venv"
fi

extras="" flavour=plain
if [ "$dev" = 1 ]; then extras="[dev]" flavour=dev; fi
# pyproject.toml and the checkout's place decide what is installed; a dev install covers a plain one.
inputs="$({ cat pyproject.toml; echo "checkout=$MLORCH_CHECKOUT"; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.mlorch-setup"
stamp_inputs="" stamp_flavour=""
[ ! -f "$stamp" ] || read -r stamp_inputs stamp_flavour <"$stamp" || true
if [ "$stamp_inputs" = "$inputs" ] && { [ "$flavour" = plain ] || [ "$stamp_flavour" = dev ]; } \
    && timeout "$PYTHON_QUERY_TIMEOUT_S" "$venv/bin/mlorch" --version >/dev/null 2>&1; then
    say "mlorch$extras is already installed in $venv (nothing changed)"
else
    if [ -n "$wheelhouse" ]; then
        export PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheelhouse"
        say "installing mlorch$extras into $venv from the wheels in $wheelhouse (no index)"
    else
        say "installing mlorch$extras into $venv (pip install -e)"
    fi
    export PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-60}" PIP_DISABLE_PIP_VERSION_CHECK=1
    run_logged pip-install "$PIP_TIMEOUT_S" "$venv/bin/python" -m pip install -q -e ".$extras"
    echo "$inputs $flavour" >"$stamp"
fi

# --- `mlorch` on PATH ----------------------------------------------------------------------------
if [ -n "${MLORCH_BIN_DIR:-}" ]; then
    bin_dir="$MLORCH_BIN_DIR"
elif is_root; then
    bin_dir=/usr/local/bin
else
    bin_dir="$HOME/.local/bin"
fi
link="$bin_dir/mlorch"
mkdir -p "$bin_dir"
if [ -e "$link" ] && [ ! -L "$link" ]; then
    say "note: $link exists and is not a link; left alone (mlorch is $venv/bin/mlorch)"
else
    ln -sfn "$venv/bin/mlorch" "$link"
fi
hash -r
on_path="$(command -v mlorch || true)"
if [ -z "$on_path" ]; then
    say "note: $bin_dir is not on PATH: run $link, or add it: echo 'export PATH=\"$bin_dir:\$PATH\"' >>~/.profile (then log in again)"
elif [ "$(readlink -f "$on_path")" != "$(readlink -f "$venv/bin/mlorch")" ]; then
    say "note: \`mlorch\` on PATH is $on_path (another install), ahead of $link; run $link or remove the other one"
fi

rm -rf "$logs"
say "ready: ${engine_line}$("$venv/bin/mlorch" --version) in $venv"
