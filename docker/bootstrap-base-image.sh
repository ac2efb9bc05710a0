#!/usr/bin/env bash
# Build a local Debian base image for mlorch without any container registry.
#
# Air-gapped labs and this project's CI cannot pull nvcr.io or Docker Hub images. This script
# debootstraps a minimal Debian root file system from a Debian mirror (or a local mirror given with
# MLORCH_DEBIAN_MIRROR), then `docker import`s it. Use it with `mlorch up --base-image <tag>`;
# `mlorch up` runs it by itself when the default base image cannot be pulled.
#
# Usage: scripts/bootstrap-base-image.sh [TAG]     (default TAG: mlorch/base:bookworm)
set -euo pipefail

tag="${1:-mlorch/base:bookworm}"
suite="${MLORCH_DEBIAN_SUITE:-bookworm}"
mirror="${MLORCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# g++: the dell-trt image compiles its native LoadGen issue path in its build stage.
packages="python3,python3-venv,ca-certificates,libgomp1,g++"

die() { echo "bootstrap-base-image: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root; run it with sudo"
command -v docker >/dev/null || die "docker CLI not found; install docker.io first"
docker info >/dev/null 2>&1 || die "docker engine not reachable; start dockerd first"
if ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || die "debootstrap not found and apt-get unavailable; install debootstrap"
    echo "bootstrap-base-image: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
fi

if docker image inspect "$tag" >/dev/null 2>&1; then
    has="$(docker image inspect -f '{{ index .Config.Labels "mlorch.base.packages" }}' "$tag" 2>/dev/null || true)"
    if [ "$has" = "$packages" ]; then
        echo "bootstrap-base-image: $tag already present" >&2
        exit 0
    fi
    echo "bootstrap-base-image: $tag holds packages '${has:-unknown}', not '$packages': rebuilding" >&2
fi

root="$(mktemp -d /tmp/mlorch-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "bootstrap-base-image: debootstrap $suite ($packages) from $mirror" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; die "debootstrap failed (log above)"; }
rm -f "$root.log"
# Trim what an image never needs: apt lists and caches, docs and man pages.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/*

tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL mlorch.base.packages=$packages" \
    --message "mlorch local base image ($suite minbase)" \
    - "$tag" >/dev/null
echo "bootstrap-base-image: built $tag" >&2
