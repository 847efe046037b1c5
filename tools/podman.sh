#!/usr/bin/env bash
# Build the function image with podman, on machines with no Docker engine and no registry.
#
#   tools/podman.sh install   install podman, runc and mmdebstrap from Debian's packages (as root)
#   tools/podman.sh base      make the local Debian base image (mmdebstrap), cached in .cache/podman
#   tools/podman.sh build     build the function image (IMAGE) on BASE_IMAGE
#   tools/podman.sh ci        install if missing, then build on the local base; prints the timings
#   tools/podman.sh info      print IMAGE's size and the local base's name
#
# Environment:
#   IMAGE          tag to build (default dev.local/knuser-functions:0.1.0, the manifests' image)
#   BASE_IMAGE     the Dockerfile's base; empty = its default (the official slim Python, which
#                  needs a registry); `local` = the Debian base made by `base` (no registry needed)
#   CONTAINERS_CONF  podman settings (default tools/containers.conf: no default ulimits, runc)
#
# Every step is idempotent: the base's tarball is kept in .cache/podman/ and imported only when
# podman lacks the image, and podman's layer cache rebuilds only the layers whose inputs changed.
# See ../shared/docs/MACHINE-NOTES.md for why each adjustment is needed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-dev.local/knuser-functions:0.1.0}
BASE_IMAGE=${BASE_IMAGE:-}
LOCAL_BASE=localhost/knuser-python-base:bookworm
# The packages of the local base, and the tarball they are cached in: a change to the list makes
# a new tarball instead of silently reusing the old one.
BASE_PACKAGES=python3,python3-venv,python3-pip,ca-certificates
CACHE_DIR="$ROOT/.cache/podman"
BASE_TAR="$CACHE_DIR/base-bookworm-$(echo "$BASE_PACKAGES" | cksum | cut -d' ' -f1).tar"
DOCKERFILE="$ROOT/Dockerfiles/functions.Dockerfile"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/tools/containers.conf}

say() { echo "podman.sh: $*"; }
die() { echo "podman.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

missing_tools() {
    local tool
    for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null 2>&1 || echo "$tool"; done
}

install() {
    local missing
    missing=$(missing_tools | tr '\n' ' ')
    [[ -z "$missing" ]] && { say "podman, runc and mmdebstrap are installed"; return; }
    [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null ||
        die "missing: $missing; install them (Debian/Ubuntu: sudo apt-get install -y podman runc mmdebstrap)"
    say "installing $missing from Debian's packages…"
    # The package lists may be missing or stale on a fresh machine.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >/dev/null
}

need_podman() {
    command -v podman >/dev/null 2>&1 ||
        die "podman not found; run 'bash tools/podman.sh install' (as root) or apt-get install podman runc"
}

base() {
    need_podman
    if podman image exists "$LOCAL_BASE"; then
        say "base $LOCAL_BASE is there"
        return
    fi
    mkdir -p "$CACHE_DIR"
    if [[ ! -s "$BASE_TAR" ]]; then
        command -v mmdebstrap >/dev/null 2>&1 ||
            die "mmdebstrap not found; run 'bash tools/podman.sh install' or apt-get install mmdebstrap"
        say "making the Debian bookworm base with mmdebstrap (about 40 s)…"
        # Written beside the final name and renamed, so an interrupted run leaves no half tarball
        # (--format: mmdebstrap would read the .part suffix as "make a directory").
        rm -rf "$BASE_TAR.part"
        mmdebstrap --quiet --variant=apt --format=tar --include="$BASE_PACKAGES" bookworm \
            "$BASE_TAR.part"
        mv "$BASE_TAR.part" "$BASE_TAR"
    fi
    say "importing $BASE_TAR as $LOCAL_BASE"
    podman import --quiet "$BASE_TAR" "$LOCAL_BASE" >/dev/null
}

build() {
    need_podman
    local args=(--file "$DOCKERFILE" --ignorefile "$DOCKERFILE.dockerignore" --tag "$IMAGE"
        # pip in the builder reaches PyPI through the host's network and trusts the host's CAs
        # (a machine behind a TLS-inspecting proxy has its CA only there).
        --network=host --volume /etc/ssl/certs:/etc/ssl/certs:ro)
    local base_image=$BASE_IMAGE
    if [[ "$base_image" == local ]]; then
        base
        base_image=$LOCAL_BASE
    fi
    [[ -z "$base_image" ]] || args+=(--build-arg "BASE_IMAGE=$base_image")
    say "building $IMAGE on ${base_image:-the default BASE_IMAGE of the Dockerfile}…"
    local started=$SECONDS
    podman build --quiet "${args[@]}" "$ROOT" >/dev/null || die "podman build failed$(
        [[ -z "$BASE_IMAGE" ]] && echo "; without a registry, build on a local base: BASE_IMAGE=local")"
    say "built $IMAGE in $((SECONDS - started)) s ($(size))"
}

size() {
    podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}'
}

case "${1:-}" in
install) install ;;
base) base ;;
build) build ;;
ci)
    started=$SECONDS
    install
    BASE_IMAGE=${BASE_IMAGE:-local}
    build
    say "install + base + image took $((SECONDS - started)) s"
    ;;
info)
    need_podman
    echo "image $IMAGE: $(size)"
    echo "local base $LOCAL_BASE (tarball $BASE_TAR)"
    ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
