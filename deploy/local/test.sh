#!/usr/bin/env bash
# The test command (README, CI): install what is missing, bring the local stack up, lint and
# type-check (ruff, mypy), run every
# test (unit and integration) against it, and take the stack down again on exit.
# A stack that was already fully up before is left running (other work may be using it).
# Arguments go to pytest; pytest's exit code 5 (no tests collected) counts as a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

bash deploy/local/install.sh
MW=.venv/bin/maskwatch

# Under CI the container images (tests/deploy/test_images_run.py, which run last) build in the
# background while the stack starts and the other tests run; the test waits on build.sh's lock.
builder=""
if [ "${CI:-}" = "true" ]; then
  mkdir -p var
  bash deploy/images/build.sh producer detector aggregator api >var/images-build.log 2>&1 &
  builder=$!
  echo "test: building the images in the background (pid $builder, log var/images-build.log)"
fi

if "$MW" stack status --quiet; then
  echo "test: the stack was already up; leaving it up afterwards"
else
  trap '"$MW" stack down || true; [ -z "$builder" ] || kill "$builder" 2>/dev/null || true' EXIT
fi
"$MW" stack up

echo "test: ruff and mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy schemas imaging runtime workers serving devtools consumers examples tests

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests: that is a failure"
  rc=1
fi
exit "$rc"
