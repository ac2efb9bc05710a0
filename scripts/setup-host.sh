#!/usr/bin/env bash
# Idempotent host set-up for mlorch.
#  - Docker engine: Debian/Ubuntu's docker.io (+ docker-compose, debootstrap) via apt when root,
#    and chromium (the tests render the comparison report with it);
#    otherwise says what to install.
#  - dockerd: started when not answering (systemd when present, else in the background).
#  - mlorch itself: `pip install -e .[dev]` into the current python3.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup-host: $*" >&2; }
die() { say "$*"; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null \
   || ! command -v docker-compose >/dev/null || ! command -v chromium >/dev/null; then
    if is_root && command -v apt-get >/dev/null; then
        # chromium: the tests render the comparison report headless (screenshot, DOM)
        say "installing docker.io, docker-compose, debootstrap and chromium with apt"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap \
            chromium >/dev/null
    elif ! command -v docker >/dev/null; then
        die "no Docker engine: install it (Debian/Ubuntu: sudo apt-get install docker.io), then run this again"
    fi
fi

if ! docker info >/dev/null 2>&1; then
    is_root || die "the Docker engine is not answering: sudo systemctl start docker, and add $USER to the docker group"
    if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
        say "starting docker with systemd"
        systemctl start docker
    else
        say "starting dockerd in the background (log: /var/log/mlorch-dockerd.log)"
        # A dockerd killed without clean-up leaves its pid file behind; dockerd refuses to start
        # while that pid belongs to any live process.
        if [ -f /var/run/docker.pid ] && ! pgrep -x dockerd >/dev/null; then
            rm -f /var/run/docker.pid
        fi
        nohup dockerd >/var/log/mlorch-dockerd.log 2>&1 &
    fi
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || die "dockerd did not come up in 60 s; see /var/log/mlorch-dockerd.log"
fi

say "installing mlorch (pip install -e .[dev])"
log="$(mktemp)"
if ! python3 -m pip install -q --disable-pip-version-check -e ".[dev]" >"$log" 2>&1; then
    tail -n 20 "$log" >&2; rm -f "$log"; die "pip install failed (output above)"
fi
rm -f "$log"
say "ready: $(docker version --format 'engine {{.Server.Version}}'), $(mlorch --version)"
