"""The shared face-crop function: box geometry (a parameter table) and the crop itself."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.crop import CropConfig, crop_face, crop_faces, fit_to_square, square_crop_box

CONFIG = CropConfig(size_px=64, margin=0.0, small_face_px=20, small_face_enlarge=0.5)


@pytest.mark.parametrize(
    ("xyxy", "resolution_wh", "expected"),
    [
        # a large face, no margin: its own square box
        ((40, 40, 80, 80), (200, 200), (40, 40, 80, 80)),
        # a non-square face: the longer side decides, centred
        ((40, 50, 80, 70), (200, 200), (40, 40, 80, 80)),
        # a small face (10 px < 20 px): enlarged by 0.5 of its side on every side -> 20 px
        ((50, 50, 60, 60), (200, 200), (45, 45, 65, 65)),
        # at the top-left border: clamped, not shifted
        ((0, 0, 30, 30), (200, 200), (0, 0, 30, 30)),
        # a small face at the bottom-right corner: clamped to the image
        ((195, 195, 200, 200), (200, 200), (192, 192, 200, 200)),
        # a degenerate box (zero size) still gives a non-empty box
        ((10, 10, 10, 10), (100, 100), (9, 9, 11, 11)),
    ],
)
def test_square_crop_box(
    xyxy: tuple[float, float, float, float],
    resolution_wh: tuple[int, int],
    expected: tuple[int, int, int, int],
) -> None:
    assert square_crop_box(xyxy, resolution_wh, CONFIG) == expected


def test_margin_grows_the_box_on_every_side() -> None:
    config = CropConfig(size_px=64, margin=0.25, small_face_px=0)
    assert square_crop_box((40, 40, 80, 80), (200, 200), config) == (30, 30, 90, 90)


def test_crop_face_resizes_to_the_classifier_input_and_keeps_content() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = (0, 0, 255)  # a red square "face" in BGR
    crop = crop_face(image, (40, 40, 60, 60), CropConfig(size_px=32, margin=0.0, small_face_px=0))
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    assert crop[16, 16].tolist() == [0, 0, 255]
    assert crop.flags["C_CONTIGUOUS"]


def test_crop_faces_batches_and_handles_no_faces() -> None:
    image = np.full((50, 80, 3), 7, np.uint8)
    boxes = np.array([[0, 0, 10, 10], [30, 20, 70, 50]], np.float32)
    assert crop_faces(image, boxes, CONFIG).shape == (2, 64, 64, 3)
    assert crop_faces(image, np.zeros((0, 4), np.float32), CONFIG).shape == (0, 64, 64, 3)


@pytest.mark.parametrize(
    ("shape", "boxes_shape"),
    [
        ((10, 10), (1, 4)),  # a grey image, not H×W×3
        ((10, 10, 3), (4,)),  # boxes not N×4
    ],
)
def test_bad_shapes_are_rejected_with_the_shape_named(
    shape: tuple[int, ...], boxes_shape: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match="shape"):
        crop_faces(np.zeros(shape, np.uint8), np.zeros(boxes_shape, np.float32), CONFIG)


@pytest.mark.parametrize(
    "kwargs",
    [{"size_px": 4}, {"margin": -0.1}, {"small_face_px": -1}, {"small_face_enlarge": 5.0}],
)
def test_crop_config_bounds(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CropConfig(**kwargs)  # type: ignore[arg-type]


def test_fit_to_square_pads_instead_of_stretching() -> None:
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, 18:22] = 255  # a vertical bar in the middle
    square = fit_to_square(wide, 40)
    assert square.shape == (40, 40, 3)
    # the bar keeps its width (4 px of 40) instead of being stretched to 8 px
    assert int((square[20, :, 0] > 127).sum()) in (4, 5)
