"""Runs the dashboard's event-stream parser tests (tests/workers/api/js, node's test runner)
so pytest and CI run them with everything else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import missing

JS_TESTS = Path(__file__).parent / "js"


def test_event_stream_parser_under_node() -> None:
    node = shutil.which("node")
    if node is None:
        missing("node is needed for the dashboard's JavaScript tests")
        return
    run = subprocess.run(
        [node, "--test", str(JS_TESTS / "sse.test.js")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass 6" in run.stdout
