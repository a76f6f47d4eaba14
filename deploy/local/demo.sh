#!/usr/bin/env bash
# The main job (README): install what is missing and bring the local stack up.
# (The pipeline on sample footage is added here when `maskwatch run` exists.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

bash deploy/local/install.sh
.venv/bin/maskwatch stack up
.venv/bin/maskwatch stack status
.venv/bin/maskwatch topics describe
echo "demo: the stack is up; take it down with: .venv/bin/maskwatch stack down"
