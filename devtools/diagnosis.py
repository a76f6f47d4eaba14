"""What `maskwatch run` tells a user when the pipeline does not start: read from the stages'
own structured logs (JSON lines), so the runner needs no extra channel into them.

`LogWatch` follows the logs as they grow and yields each problem once (a camera that cannot
open, a detector that is not ready and why); `likely_cause` turns what was seen, plus whether
any frame reached Kafka, into the one sentence a user reads first when nothing is counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, order=True)
class Problem:
    """One thing a stage reported that stops frames from being counted."""

    stage: str
    subject: str
    """The camera id or the process name the problem is about."""
    reason: str

    def line(self) -> str:
        return f"{self.stage}: {self.subject}: {self.reason}"


def problem_of(stage: str, process: str, entry: dict[str, Any]) -> Problem | None:
    """The problem a log entry reports, if it is one the user must hear about."""
    event = entry.get("event")
    if event == "camera_source_failed":
        camera = str(entry.get("camera_id") or entry.get("camera") or "?")
        return Problem("camera", camera, f"cannot open: {entry.get('reason', 'unknown')}")
    if event == "readiness" and entry.get("ready") is False and entry.get("reason") != "starting":
        return Problem(stage, process, f"not ready: {entry.get('reason') or 'unknown'}")
    return None


@dataclass
class LogWatch:
    """Follows log files and reports each distinct problem once."""

    offsets: dict[Path, int] = field(default_factory=dict)
    seen: set[Problem] = field(default_factory=set)

    def new_problems(self, logs: list[tuple[str, str, Path]]) -> Iterator[Problem]:
        """Problems in what (stage, process, log) files gained since the last call."""
        for stage, process, path in logs:
            for entry in self._new_entries(path):
                problem = problem_of(stage, process, entry)
                if problem is not None and problem not in self.seen:
                    self.seen.add(problem)
                    yield problem

    def _new_entries(self, path: Path) -> Iterator[dict[str, Any]]:
        if not path.is_file():
            return
        with path.open("rb") as handle:
            handle.seek(self.offsets.get(path, 0))
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offsets[path] = self.offsets.get(path, 0) + len(complete)
        for raw in complete.splitlines():
            try:
                entry = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # a non-JSON line (a native library's own output)
            if isinstance(entry, dict):
                yield entry


def likely_cause(problems: set[Problem], frames_sent: int, results_sent: int) -> str:
    """The most likely reason nothing was counted, from the earliest stage that is stuck."""
    cameras = sorted(p for p in problems if p.stage == "camera")
    if frames_sent == 0:
        if cameras:
            return "no camera source delivered a frame: " + "; ".join(p.line() for p in cameras)
        return "no frame reached Kafka: the producer did not start its cameras (see its log)"
    if results_sent == 0:
        detectors = sorted(p for p in problems if p.stage == "detector")
        if detectors:
            return "frames arrive but no detector answers: " + "; ".join(
                p.line() for p in detectors
            )
        return (
            "frames arrive but no result was published: the detector is not ready (loading "
            "its model, or the model server is not serving: `maskwatch stack status`)"
        )
    return "results are published but the aggregator counted none (see the aggregator's log)"
