"""SCRFD and CenterFace backends: decoding on synthetic tensors, padding, candidates →
detections, and the real models on shared crowd photos (faces found where annotated)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from devtools.evaluate.scoring import match
from imaging.detections import Detections
from serving.dataset import read_voc
from workers.detector.backends import centerface, detector_config, make_detector, scrfd
from workers.detector.backends.configs import CenterFaceConfig, ScrfdConfig
from workers.detector.backends.shared import Candidates, padded_rgb, to_detections

F32 = np.float32


def scrfd_outputs(height: int, width: int) -> list[np.ndarray]:
    """Zero outputs of the right shapes for an H×W input (scores, boxes, keypoints)."""
    counts = [(height // s) * (width // s) * 2 for s in scrfd.STRIDES]
    return (
        [np.zeros((1, n, 1), F32) for n in counts]
        + [np.zeros((1, n, 4), F32) for n in counts]
        + [np.zeros((1, n, 10), F32) for n in counts]
    )


@pytest.mark.parametrize(
    ("height", "width", "stride", "index", "centre"),
    [
        (64, 64, 8, 0, (0, 0)),  # first cell, first anchor: no +0.5 offset
        (64, 64, 8, 1, (0, 0)),  # second anchor of the same cell
        (64, 64, 8, 2, (8, 0)),  # next cell in the row
        (64, 96, 16, 2 * 6, (0, 16)),  # first cell of the second row (6 cells per row)
        (32, 32, 32, 1, (0, 0)),  # a single cell at the coarsest stride
    ],
)
def test_scrfd_anchor_order(
    height: int, width: int, stride: int, index: int, centre: tuple[int, int]
) -> None:
    centres = scrfd.anchor_centres(height, width, stride)
    assert tuple(centres[index]) == centre
    assert len(centres) == (height // stride) * (width // stride) * 2
    assert not centres.flags.writeable


@pytest.mark.parametrize(
    ("level", "anchor", "distances", "expected_xyxy"),
    [
        # stride 8, anchor 3 = cell (1, 0) → centre (8, 0); distances in stride units
        (0, 3, (1, 0, 2, 3), (0, 0, 24, 24)),
        # stride 16, anchor 0 → centre (0, 0)
        (1, 0, (0, 0, 1, 1), (0, 0, 16, 16)),
        # stride 32, last anchor of a 64×64 input: cell (1, 1) → centre (32, 32)
        (2, 7, (0.5, 0.25, 0.5, 0.25), (16, 24, 48, 40)),
    ],
)
def test_scrfd_decode_one_face(
    level: int, anchor: int, distances: tuple[float, ...], expected_xyxy: tuple[float, ...]
) -> None:
    outputs = scrfd_outputs(64, 64)
    outputs[level][0, anchor, 0] = 0.9
    outputs[level + 3][0, anchor] = distances
    outputs[level + 6][0, anchor] = np.arange(10)  # (0, 1), (2, 3), … stride units
    xyxy, scores, landmarks = scrfd.decode(outputs, (64, 64), 0.5)
    np.testing.assert_allclose(xyxy, [expected_xyxy])
    np.testing.assert_allclose(scores, [0.9])
    stride = scrfd.STRIDES[level]
    centre = scrfd.anchor_centres(64, 64, stride)[anchor]
    np.testing.assert_allclose(landmarks[0], centre + np.arange(10).reshape(5, 2) * stride)


def test_scrfd_decode_nothing_above_threshold_is_empty() -> None:
    xyxy, scores, landmarks = scrfd.decode(scrfd_outputs(64, 96), (64, 96), 0.5)
    assert xyxy.shape == (0, 4) and scores.shape == (0,) and landmarks.shape == (0, 5, 2)


def test_scrfd_decode_rejects_outputs_of_another_size() -> None:
    with pytest.raises(ValueError, match="stride 8: expected 128 scores"):
        scrfd.decode(scrfd_outputs(64, 96), (64, 64), 0.5)


def centerface_maps(h: int, w: int) -> tuple[np.ndarray, ...]:
    return (
        np.zeros((1, 1, h, w), F32),
        np.zeros((1, 2, h, w), F32),
        np.zeros((1, 2, h, w), F32),
        np.zeros((1, 10, h, w), F32),
    )


@pytest.mark.parametrize(
    ("cell", "log_size_hw", "offset_yx", "expected_xyxy"),
    [
        # cell (row 2, col 3), size exp(0)·4 = 4 px, centre ((3 + 0.5)·4, (2 + 0.5)·4)
        ((2, 3), (0.0, 0.0), (0.0, 0.0), (12.0, 8.0, 16.0, 12.0)),
        # height exp(log 2)·4 = 8, width exp(log 4)·4 = 16; centre moved to (3, 4) by the offset
        ((0, 0), (np.log(2), np.log(4)), (0.5, 0.25), (-5.0, 0.0, 11.0, 8.0)),
    ],
)
def test_centerface_decode_one_face(
    cell: tuple[int, int],
    log_size_hw: tuple[float, float],
    offset_yx: tuple[float, float],
    expected_xyxy: tuple[float, ...],
) -> None:
    heatmap, log_size, offset, marks = centerface_maps(8, 8)
    heatmap[0, 0, cell[0], cell[1]] = 0.8
    log_size[0, :, cell[0], cell[1]] = log_size_hw
    offset[0, :, cell[0], cell[1]] = offset_yx
    marks[0, :, cell[0], cell[1]] = [0.5, 0.25] * 5  # (y, x) fractions of the box
    xyxy, scores, points = centerface.decode(heatmap, log_size, offset, marks, 0.5)
    np.testing.assert_allclose(xyxy, [expected_xyxy], atol=1e-5)
    np.testing.assert_allclose(scores, [0.8])
    x1, y1, x2, y2 = expected_xyxy
    expected_point = (x1 + 0.25 * (x2 - x1), y1 + 0.5 * (y2 - y1))
    np.testing.assert_allclose(points[0], [expected_point] * 5, atol=1e-5)


def test_centerface_decode_empty_heatmap() -> None:
    heatmap, log_size, offset, marks = centerface_maps(4, 6)
    xyxy, scores, points = centerface.decode(heatmap, log_size, offset, marks, 0.1)
    assert xyxy.shape == (0, 4) and scores.shape == (0,) and points.shape == (0, 5, 2)


@pytest.mark.parametrize(
    ("hw", "scale", "padded_hw"),
    [
        ((32, 32), 1.0, (32, 32)),  # already a multiple of 32
        ((33, 70), 1.0, (64, 96)),  # padded up, never stretched
        ((100, 50), 2.0, (224, 128)),  # resized to 200×100 first
        ((1, 1), 1.0, (32, 32)),  # tiny frame
    ],
)
def test_padded_rgb(hw: tuple[int, int], scale: float, padded_hw: tuple[int, int]) -> None:
    image = np.zeros((*hw, 3), np.uint8)
    image[..., 0] = 200  # blue in BGR
    out = padded_rgb(image, scale)
    assert out.shape == (*padded_hw, 3)
    h, w = round(hw[0] * scale), round(hw[1] * scale)
    assert (out[:h, :w, 2] == 200).all() and (out[:h, :w, 0] == 0).all()  # RGB now
    assert (out[h:] == 0).all() and (out[:, w:] == 0).all()


def test_to_detections_nms_rescales_and_clips() -> None:
    config = CenterFaceConfig(nms_threshold=0.4, box_scale_wh=(1.0, 1.0), box_shift_y=0)
    found = Candidates(
        xyxy=np.array([[0, 0, 20, 20], [1, 1, 21, 21], [100, 100, 260, 260]], F32),
        scores=np.array([0.9, 0.8, 0.7], F32),
        landmarks=np.full((3, 5, 2), 10, F32),
        scale=2.0,
    )
    out = to_detections(found, (100, 100), config)
    np.testing.assert_allclose(out.xyxy, [[0, 0, 10, 10], [50, 50, 100, 100]])
    np.testing.assert_allclose(out.scores, [0.9, 0.7])
    assert out.landmarks is not None and out.landmarks.shape == (2, 5, 2)
    np.testing.assert_allclose(out.landmarks, 5.0)


def test_to_detections_of_no_candidates() -> None:
    config = ScrfdConfig()
    empty = Candidates(np.zeros((0, 4), F32), np.zeros(0, F32), np.zeros((0, 5, 2), F32), 1.0)
    assert len(to_detections(empty, (10, 10), config)) == 0


@pytest.mark.parametrize(
    ("landmarks", "error"),
    [
        (None, None),  # optional
        (np.zeros((2, 5, 2), F32), None),  # what both backends give
        (np.zeros((1, 5, 2), F32), r"landmarks must have shape \(2, 5, 2\)"),  # wrong N
        (np.zeros((2, 5, 2), np.float64), "expected float32"),  # wrong dtype
    ],
)
def test_detections_landmarks_are_shape_checked(
    landmarks: np.ndarray | None, error: str | None
) -> None:
    def build() -> Detections:
        return Detections(np.zeros((2, 4), F32), np.zeros(2, F32), landmarks)

    if error is None:
        assert len(build()) == 2
    else:
        with pytest.raises(ValueError, match=error):
            build()


MODEL_FILES = {"scrfd-2.5g": "scrfd_2.5g_kps.onnx", "centerface": "centerface.onnx"}
PHOTOS = ("maksssksksss0.jpg", "maksssksksss1.jpg", "maksssksksss100.jpg")


@pytest.mark.parametrize("backend", sorted(MODEL_FILES))
def test_real_model_finds_annotated_faces(backend: str, shared_dir: Path) -> None:
    """Each backend, at its calibrated settings, on a few crowd photos: most annotated faces
    are matched (IoU ≥ 0.5) and most detections are annotated faces."""
    config = detector_config(
        backend=backend, model_path=shared_dir / "models" / MODEL_FILES[backend], threads=1
    )
    detector = make_detector(config)
    crowd = shared_dir / "data" / "crowd"
    hits = predictions = truths = 0
    for name in PHOTOS:
        image = np.asarray(cv2.imread(str(crowd / "images" / name)), np.uint8)
        boxes = np.array(
            [box for _, box in read_voc(crowd / "annotations" / name.replace(".jpg", ".xml"))], F32
        )
        found = detector.detect(image)
        assert found.landmarks is not None and found.landmarks.shape == (len(found), 5, 2)
        hits += int(match(found.xyxy, found.scores, boxes).sum())
        predictions += len(found)
        truths += len(boxes)
    assert truths > 0
    assert hits / truths >= 0.6, (hits, truths)
    assert hits / predictions >= 0.6, (hits, predictions)
