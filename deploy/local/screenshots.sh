#!/usr/bin/env bash
# Refresh the dashboard screenshots the README shows (docs/dashboard.png, the live tiles;
# docs/dashboard-fleet.png, 500 labelled cameras grouped by site; docs/dashboard-health.png, a
# configured camera never seen and a disconnected one; docs/camera-detail.png, one camera's
# page with its charts and health). The browser tests write
# their screenshots to pytest's tmp folder; only this script points them at docs/.
# Needs the local stack's Redis and chromium + chromium-driver (apt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MASKWATCH_SCREENSHOT_DIR="$ROOT/docs" .venv/bin/python -m pytest -q \
  tests/workers/api/test_dashboard_browser.py
ls -l docs/dashboard*.png docs/camera-detail.png
