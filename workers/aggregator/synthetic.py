"""Synthetic, contract-valid frame results for the aggregator's benchmark, tests and demos.

Real results come from the detector; these let the aggregation side be exercised (and its
throughput measured) without cameras or models.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.result import Face, FrameResult, ModelRef, SkipReason, StageTimings, counts_of

DETECTOR = ModelRef(name="synthetic-detector", version="1")
CLASSIFIER = ModelRef(name="synthetic-classifier", version="1")


def face(label: str, i: int = 0) -> Face:
    x = 10.0 + 30.0 * (i % 20)
    return Face(
        xyxy=(x, 10.0, x + 20.0, 30.0),
        score=0.9,
        label="with_mask" if label == "with_mask" else "without_mask",
        mask_probability=0.95 if label == "with_mask" else 0.05,
    )


def result(
    camera: str,
    seq: int,
    captured_at: datetime | float,
    masked: int = 0,
    unmasked: int = 0,
    skipped: bool = False,
    labels: dict[str, str] | None = None,
) -> FrameResult:
    """One result with `masked` + `unmasked` faces, or a skipped (too old) one."""
    if not isinstance(captured_at, datetime):
        captured_at = datetime.fromtimestamp(captured_at, UTC)
    faces = (
        ()
        if skipped
        else tuple(
            face("with_mask" if i < masked else "without_mask", i) for i in range(masked + unmasked)
        )
    )
    return FrameResult(
        camera_id=camera,
        seq=seq,
        captured_at=captured_at,
        processed_at=captured_at + timedelta(milliseconds=80),
        frame_wh=(640, 480),
        status="skipped" if skipped else "processed",
        skip_reason=SkipReason.TOO_OLD if skipped else None,
        faces=faces,
        counts=counts_of(faces),
        detector=DETECTOR,
        classifier=CLASSIFIER,
        worker_id="synthetic",
        timings_ms=StageTimings(total_ms=0.0 if skipped else 80.0),
        labels=labels or {},
    )


def stream(
    cameras: list[str], frames_per_camera: int, start: float, fps: float = 5.0
) -> list[FrameResult]:
    """A deterministic mix: per camera, frames with 0-4 faces, about 70 % masked, 1 in 10
    skipped, interleaved across cameras as the results topic would carry them."""
    out = []
    for seq in range(frames_per_camera):
        for c, camera in enumerate(cameras):
            t = start + seq / fps
            if (seq + c) % 10 == 9:
                out.append(result(camera, seq, t, skipped=True))
                continue
            n = (seq * 7 + c) % 5
            masked = (n * 7 + 5) // 10
            out.append(result(camera, seq, t, masked=masked, unmasked=n - masked))
    return out
