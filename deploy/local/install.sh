#!/usr/bin/env bash
# Install what the local stack and the tests need, idempotently (quick when all is there):
#   1. Debian packages: Redis, ffmpeg, Chromium, GStreamer's RTSP server, Java 17, Maven, jq,
#      podman, runc, debootstrap and catatonit (the image tests build and run the images and
#      `podman kube play` the chart: deploy/images, tests/deploy/test_images_run.py);
#   2. the virtualenv .venv with maskwatch and all its service extras (editable), and the
#      images' pinned wheels in ~/.cache/maskwatch/wheelhouse (for deploy/images/build.sh);
#   3. the Apache Kafka broker (and console tools) jars from Maven Central, cached in
#      ~/.cache/maskwatch;
#   4. the demo cameras' videos, built from the sample photos in deploy/local/samples.
# Environment: MASKWATCH_PYTHON (interpreter for a new venv; default python3.11 or python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
say() { printf 'install: %s\n' "$*"; }

# 1. Debian packages ------------------------------------------------------------------------
APT_PACKAGES=(
  redis-server ffmpeg chromium chromium-driver
  gir1.2-gst-rtsp-server-1.0 python3-gi
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  openjdk-17-jre-headless maven jq nodejs
  podman runc debootstrap catatonit
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "apt: all ${#APT_PACKAGES[@]} packages present"
fi
# Debian's package may start its own Redis on 6379 (init script); the stack runs its own, so
# stop that service to keep the port free and `stack down` complete.
if [ -x /etc/init.d/redis-server ] && /etc/init.d/redis-server status >/dev/null 2>&1; then
  say "apt: stopping the redis-server system service (the stack starts its own)"
  /etc/init.d/redis-server stop >/dev/null || true
fi

# 2. Python virtualenv ----------------------------------------------------------------------
EXTRAS="producer,detector,serving,aggregator,api,parquet,examples,dev"
IMAGE_EXTRAS="producer,detector,aggregator,api,serving"   # deploy/images/build.sh's images
WHEELHOUSE="${XDG_CACHE_HOME:-$HOME/.cache}/maskwatch/wheelhouse"   # build.sh reads it there
STAMP=".venv/.maskwatch-install"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1) $EXTRAS"
if [ ! -x .venv/bin/python ]; then
  PY="${MASKWATCH_PYTHON:-$(command -v python3.11 || command -v python3)}"
  say "venv: creating .venv with $PY ($("$PY" --version))"
  "$PY" -m venv .venv
fi
if [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] && [ -x .venv/bin/maskwatch ]; then
  say "venv: up to date"
else
  # The images' pinned wheels (deploy/docker/requirements.txt) are downloaded once into a
  # wheelhouse: the venv installs from it and deploy/images/build.sh mounts it into the image
  # builds, so the images fetch nothing more from PyPI (CI builds them right after this).
  say "venv: wheelhouse $WHEELHOUSE, then pip install -e .[$EXTRAS]"
  log="$(mktemp)"
  reqs="$(mktemp)"
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python deploy/docker/extras.py pyproject.toml "$IMAGE_EXTRAS" >"$reqs" &&
         .venv/bin/python -m pip download -q --only-binary=:all: --dest "$WHEELHOUSE" \
           -c deploy/docker/requirements.txt -r "$reqs" &&
         .venv/bin/python -m pip install -q --find-links "$WHEELHOUSE" -e ".[$EXTRAS]"; } \
      >"$log" 2>&1; then
    cat "$log"; say "venv: pip install failed"; exit 1
  fi
  rm -f "$log" "$reqs"
  printf '%s' "$want" >"$STAMP"
fi

# 3. Kafka jars -----------------------------------------------------------------------------
# `.complete` holds the pom's checksum: a changed pom (a jar added) fetches again. The update
# only adds and removes jar files, never the folder, so a broker running from it keeps going.
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/local/pom.xml)"
LIBS="${XDG_CACHE_HOME:-$HOME/.cache}/maskwatch/kafka-$KAFKA_VERSION/libs"
POM_SUM="$(sha256sum deploy/local/pom.xml | cut -d' ' -f1)"
if [ -f "$LIBS/.complete" ] && [ "$(cat "$LIBS/.complete")" = "$POM_SUM" ]; then
  say "kafka: $KAFKA_VERSION jars cached in $LIBS"
else
  say "kafka: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central"
  tmp="$LIBS.tmp.$$"
  rm -rf "$tmp"
  log="$(mktemp)"
  if ! mvn -B -f deploy/local/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1; then
    cat "$log"; say "kafka: mvn dependency:copy-dependencies failed"; exit 1
  fi
  rm -f "$log"
  mkdir -p "$LIBS"
  for jar in "$tmp"/*.jar; do
    [ -f "$LIBS/$(basename "$jar")" ] || cp "$jar" "$LIBS/"
  done
  for jar in "$LIBS"/*.jar; do
    [ -f "$tmp/$(basename "$jar")" ] || rm -f "$jar"
  done
  rm -rf "$tmp"
  printf '%s' "$POM_SUM" >"$LIBS/.complete"
  say "kafka: $(ls "$LIBS"/*.jar | wc -l) jars in $LIBS"
fi

# 4. Sample footage ---------------------------------------------------------------------------
bash deploy/local/samples/build.sh var/samples
say "samples: $(ls var/samples/*.mp4 | wc -l) demo camera videos in var/samples"
