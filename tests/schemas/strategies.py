"""Hypothesis strategies for valid contract values (shared by the schema tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from schemas.frame import FrameMeta
from schemas.result import Face, FrameResult, ModelRef, SkipReason, StageTimings, counts_of

camera_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")

# Aware times in any whole-minute offset (RFC 3339 has no finer ones); readers must treat
# them as the same instant.
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)

labels = st.dictionaries(
    st.from_regex(r"\A[a-z][a-z0-9_]{0,31}\Z"), st.text(min_size=1, max_size=64), max_size=16
)

frame_metas = st.builds(
    FrameMeta,
    camera_id=camera_ids,
    seq=st.integers(min_value=0, max_value=2**63 - 1),
    captured_at=aware_times,
    width=st.integers(min_value=1, max_value=16384),
    height=st.integers(min_value=1, max_value=16384),
    labels=labels,
)

probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
millis = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


@st.composite
def faces_in(draw: st.DrawFn, width: int, height: int) -> Face:
    """A face whose box lies inside a width x height frame."""
    x1 = draw(st.floats(min_value=0, max_value=width, allow_nan=False))
    y1 = draw(st.floats(min_value=0, max_value=height, allow_nan=False))
    x2 = draw(st.floats(min_value=x1, max_value=width, allow_nan=False))
    y2 = draw(st.floats(min_value=y1, max_value=height, allow_nan=False))
    return Face(
        xyxy=(x1, y1, x2, y2),
        score=draw(probabilities),
        label=draw(st.sampled_from(["with_mask", "without_mask"])),
        mask_probability=draw(probabilities),
    )


model_refs = st.builds(
    ModelRef,
    name=st.text(min_size=1, max_size=128),
    version=st.text(min_size=1, max_size=64),
)


@st.composite
def frame_results(draw: st.DrawFn) -> FrameResult:
    """A consistent FrameResult: processed with faces, or skipped with a reason and none."""
    width = draw(st.integers(min_value=1, max_value=8192))
    height = draw(st.integers(min_value=1, max_value=8192))
    skipped = draw(st.booleans())
    faces = () if skipped else tuple(draw(st.lists(faces_in(width, height), max_size=8)))
    captured = draw(aware_times)
    return FrameResult(
        camera_id=draw(camera_ids),
        seq=draw(st.integers(min_value=0, max_value=2**63 - 1)),
        captured_at=captured,
        processed_at=captured.astimezone(UTC)
        + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=1))),
        frame_wh=(width, height),
        status="skipped" if skipped else "processed",
        skip_reason=SkipReason.TOO_OLD if skipped else None,
        faces=faces,
        counts=counts_of(faces),
        detector=draw(model_refs),
        classifier=draw(model_refs),
        worker_id=draw(st.text(min_size=1, max_size=128)),
        timings_ms=draw(
            st.builds(
                StageTimings,
                decode_ms=millis,
                detect_ms=millis,
                classify_ms=millis,
                total_ms=millis,
            )
        ),
    )
