"""Detections type, detection scaling, box calibration and config bounds."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from imaging.boxes import adjust_boxes
from imaging.detections import Detections
from workers.detector.backends import detector_config
from workers.detector.backends.base import detection_scale


@pytest.mark.parametrize(
    ("xyxy_shape", "scores_shape", "dtype", "error"),
    [
        ((0, 4), (0,), np.float32, None),  # empty frame
        ((3, 4), (3,), np.float32, None),  # three faces
        ((3, 5), (3,), np.float32, "N×4"),  # wrong box width
        ((3, 4), (2,), np.float32, r"shape \(3,\)"),  # one score missing
        ((2, 4), (2,), np.float64, "float32"),  # wrong dtype
    ],
)
def test_detections_checks_shapes(
    xyxy_shape: tuple[int, int], scores_shape: tuple[int], dtype: type, error: str | None
) -> None:
    def build() -> Detections:
        return Detections(np.zeros(xyxy_shape, dtype), np.zeros(scores_shape, dtype))

    if error is None:
        assert len(build()) == xyxy_shape[0]
    else:
        with pytest.raises(ValueError, match=error):
            build()


@pytest.mark.parametrize(
    ("wh", "scale"),
    [
        ((400, 300), 3.0),  # small frame: upscaling capped at max_upscale
        ((600, 400), 2.0),  # small frame: longer side brought to 1200
        ((1200, 900), 1.0),  # exactly the target: as is
        ((1600, 900), 1.0),  # between target and cap: as is
        ((4096, 2160), 0.5),  # 4K: capped at 2048
    ],
)
def test_detection_scale(wh: tuple[int, int], scale: float) -> None:
    config = detector_config(upscale_to_px=1200, max_upscale=3.0, max_side_px=2048)
    assert detection_scale(wh, config) == pytest.approx(scale)


def test_adjust_boxes_scales_about_centre_and_shifts_down() -> None:
    boxes = np.array([[10, 20, 30, 60]], np.float32)  # 20 wide, 40 tall, centre (20, 40)
    out = adjust_boxes(boxes, (1.5, 0.5), 0.25)  # 30 wide, 20 tall, centre (20, 50)
    np.testing.assert_allclose(out, [[5, 40, 35, 60]])
    np.testing.assert_allclose(adjust_boxes(boxes, (1.0, 1.0), 0.0), boxes)


@pytest.mark.parametrize(
    "overrides",
    [
        {"upscale_to_px": 3000, "max_side_px": 2048},  # target above the cap
        {"box_scale_wh": (0.1, 1.0)},  # calibration out of range
        {"score_threshold": 1.5},
        {"unknown_key": 1},  # unknown keys are rejected
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        detector_config(**overrides)
