#!/bin/sh
# Install requirements (file $1) into /opt/venv against the pins of requirements.txt, from local
# wheels only: the build's cache mount $2 and, when set, $WHEELHOUSE (a folder the builder
# mounts). Only when a pinned wheel is missing from both is PyPI asked, and what it sends lands
# in the cache mount, so the other images and rebuilds fetch nothing twice and no wheel lands in
# a layer. (pip's own HTTP cache is not enough: it keeps only what the index marks cacheable.)
set -eu
requirements="$1" wheels="$2"
pins=deploy/docker/requirements.txt
install() { /opt/venv/bin/pip install --no-cache-dir --no-index -c "$pins" -r "$requirements" "$@"; }
if ! install --find-links "$wheels" ${WHEELHOUSE:+--find-links "$WHEELHOUSE"}; then
    echo "install-wheels: some wheels are not local; downloading them into the cache mount" >&2
    /opt/venv/bin/pip download --only-binary=:all: --dest "$wheels" \
        ${WHEELHOUSE:+--find-links "$WHEELHOUSE"} -c "$pins" -r "$requirements"
    install --find-links "$wheels"
fi
