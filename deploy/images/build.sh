#!/usr/bin/env bash
# Build maskwatch's images with podman, with no registry but the Debian mirror and PyPI:
#   1. a Python 3.11 base image from a debootstrapped Debian 12 minbase (Debian 12's python3 is
#      3.11), cached as a tarball in ~/.cache/maskwatch/images under a key of its recipe, so it
#      is bootstrapped again only when the recipe below changes;
#   2. the service images from deploy/docker/Dockerfile with --build-arg PYTHON_IMAGE=<that base>
#      (the same Dockerfile a Docker user builds against the official python:3.11-slim image):
#      maskwatch/producer, /detector, /aggregator, /api (one extra each) and maskwatch/maskwatch
#      (every extra: `maskwatch serve`, the local model server with TensorFlow, and the topics
#      job). Wheels come from ~/.cache/maskwatch/wheelhouse (filled by deploy/local/install.sh)
#      and the build's cache mount; only a wheel missing from both is downloaded.
# podman (it builds through its built-in buildah), runc and debootstrap are installed with apt
# when missing.
#
# Usage: deploy/images/build.sh [image ...]   (default: all; names as in IMAGES below)
# Env:   MASKWATCH_BUILD_CA_BUNDLE (CA bundle for the build's downloads; default: the host's),
#        MASKWATCH_IMAGE_TAG (default: the chart's appVersion), MASKWATCH_CACHE (default
#        ~/.cache/maskwatch), MASKWATCH_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Prints `image <name> <id> <size>` per image on success.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
say() { printf 'images: %s (%ss)\n' "$*" "$SECONDS" >&2; }

# podman's settings for this kind of host (runc, cgroupfs, ulimits): see containers.conf.
export CONTAINERS_CONF="$repo/deploy/images/containers.conf"
tag="${MASKWATCH_IMAGE_TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' deploy/helm/maskwatch/Chart.yaml)}"
cache="${MASKWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maskwatch}/images"
mirror="${MASKWATCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# One build at a time per cache: CI starts a build in the background (deploy/local/test.sh)
# and the images test calls this script again; the second waits here, then reuses every layer.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock -n 9 || { say "waiting for another build to finish"; flock 9; }

# name -> the Dockerfile's EXTRAS for it
declare -A IMAGES=(
  [producer]=producer
  [detector]=detector
  [aggregator]=aggregator
  [api]=api
  [maskwatch]=producer,detector,aggregator,api,serving
)

# 0. Tools -----------------------------------------------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin"   # debootstrap and runc live there
need=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
  say "apt: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# 1. Python base -----------------------------------------------------------------------------
BASE_SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates

bootstrap_base() { # rootfs-dir: Debian minbase with Python, apt's caches and lists removed
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "$1" "$mirror" >&2
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb \
    "$1"/var/log/*.log "$1"/var/log/apt/*
}

# The key covers everything that decides the base's content except the mirror's current state
# (Debian point releases): delete the tarball to pick those up.
key="$({ declare -f bootstrap_base; echo "$BASE_SUITE $BASE_PACKAGES $mirror"; } | sha256sum | cut -c1-12)"
base="localhost/maskwatch-python:3.11-$BASE_SUITE-$key"
tarball="$cache/python-base-$BASE_SUITE-$key.tar"
if podman image exists "$base"; then
  say "base: $base present"
else
  if [ ! -f "$tarball" ]; then
    say "base: debootstrap $BASE_SUITE minbase + $BASE_PACKAGES"
    mkdir -p "$cache"
    rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    bootstrap_base "$rootfs"
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  say "base: podman import $tarball"
  podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$tarball" "$base" >/dev/null
fi

# 2. Service images --------------------------------------------------------------------------
# RUN steps trust what the host trusts (a proxy's CA, say): the host's CA bundle is mounted
# read-only for the build only (it is in no layer); Debian's pip reads that path.
build_flags=(--network=host --layers)
ca_bundle="${MASKWATCH_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[ -f "$ca_bundle" ] && build_flags+=(--volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
# The wheelhouse deploy/local/install.sh filled with the images' pinned wheels, mounted read-only
# for the dependency step (the Dockerfile's WHEELHOUSE): with it complete, no build asks PyPI.
# Always passed (an empty folder when missing), so the build arg never changes the layer cache.
# (Not under MASKWATCH_CACHE: install.sh does not read that; and a MASKWATCH_* variable left in
# the environment of the services or of pytest is an unknown setting there, which fails.)
wheelhouse="${XDG_CACHE_HOME:-$HOME/.cache}/maskwatch/wheelhouse"
mkdir -p "$wheelhouse"
build_flags+=(--volume "$wheelhouse:/wheelhouse:ro" --build-arg WHEELHOUSE=/wheelhouse)
selected=("$@")
((${#selected[@]})) || selected=(producer detector aggregator api maskwatch)
# An image is rebuilt only when its inputs changed: the build context's files (the `!` lines
# of Dockerfile.dockerignore), the base and EXTRAS, hashed into a label. Unchanged images are
# reused without running podman build at all (its layer-cache checks alone take a minute per
# image on a busy 2-core machine).
context_files() { # what Dockerfile.dockerignore lets into the context, and the Dockerfile
  # shellcheck disable=SC2046 # one path per `!` line of the ignore file
  find deploy/docker/Dockerfile $(sed -n 's:^!\(.*\)/*$:\1:p' deploy/docker/Dockerfile.dockerignore) \
    -type f ! -path '*/__pycache__/*' ! -path 'serving/models/*' -print0 | sort -z
}
context_hash="$(context_files | xargs -0 sha256sum | sha256sum | cut -c1-16)"
superseded=0
for name in "${selected[@]}"; do
  extras="${IMAGES[$name]:?unknown image $name (one of ${!IMAGES[*]})}"
  inputs="$(echo "$context_hash $base $extras" | sha256sum | cut -c1-16)"
  image="maskwatch/$name:$tag"
  had="$(podman image inspect --format '{{index .Labels "maskwatch.inputs"}}' "$image" 2>/dev/null || true)"
  if [ "$had" = "$inputs" ]; then
    say "reuse $image (inputs $inputs unchanged)"
    continue
  fi
  [ -z "$had" ] || superseded=1
  say "build $image (extras $extras, inputs $inputs)"
  podman build "${build_flags[@]}" \
    -f deploy/docker/Dockerfile --ignorefile deploy/docker/Dockerfile.dockerignore \
    --build-arg PYTHON_IMAGE="$base" --build-arg EXTRAS="$extras" \
    --label maskwatch.inputs="$inputs" -t "$image" . >&2
done
# Images a rebuild superseded (untagged, with the label): the TensorFlow ones are GBs each.
# Not fatal: an image still used by a container (an interrupted build's) stays until then.
# Skipped when nothing was superseded (a cold build): the prune alone took ~1 min under load.
if ((superseded)); then
  podman image prune --force --filter label=maskwatch.inputs >/dev/null 2>&1 \
    || say "prune: some superseded images are still in use by containers; left in place"
fi
for name in "${selected[@]}"; do
  podman image inspect --format "image maskwatch/$name:$tag {{.Id}} {{.Size}}" "maskwatch/$name:$tag"
done
say "done"
