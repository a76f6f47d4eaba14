"""Anchors, box decoding and NMS of the ONNX RetinaFace, and the real model on crowd photos."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from devtools.evaluate.scoring import match
from imaging.boxes import nms
from serving.dataset import read_voc
from workers.detector.backends import detector_config
from workers.detector.backends.retinaface_mobilenet import (
    MEAN_BGR,
    MIN_SIZES,
    STEPS,
    MobileNetRetinaFace,
    anchors,
    decode_boxes,
    postprocess,
    session_options,
    to_input,
)


def naive_anchors(height: int, width: int) -> np.ndarray:
    """The reference PriorBox loop of the architecture (slow, obviously right)."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        for i in range(math.ceil(height / step)):
            for j in range(math.ceil(width / step)):
                for size in sizes:
                    out.append(
                        [
                            (j + 0.5) * step / width,
                            (i + 0.5) * step / height,
                            size / width,
                            size / height,
                        ]
                    )
    return np.array(out, np.float32)


@pytest.mark.parametrize(
    ("height", "width"),
    [
        (32, 32),  # one cell at the coarsest level
        (300, 401),  # odd sizes: ceil, not floor
        (640, 480),  # portrait
        (7, 9),  # smaller than every step
    ],
)
def test_anchors_match_reference_loop(height: int, width: int) -> None:
    np.testing.assert_allclose(anchors(height, width), naive_anchors(height, width), rtol=1e-6)
    assert not anchors(height, width).flags.writeable  # cached: shared, read-only


def test_decode_zero_offsets_gives_the_anchor_box() -> None:
    priors = np.array([[0.5, 0.5, 0.1, 0.2]], np.float32)
    boxes = decode_boxes(np.zeros((1, 4), np.float32), priors, (200, 100))
    np.testing.assert_allclose(boxes, [[90, 40, 110, 60]])


def test_decode_applies_variances() -> None:
    priors = np.array([[0.5, 0.5, 0.1, 0.1]], np.float32)
    loc = np.array([[1.0, 0.0, 0.0, math.log(2) / 0.2]], np.float32)  # +0.1·w in x, 2× height
    boxes = decode_boxes(loc, priors, (100, 100))
    np.testing.assert_allclose(boxes, [[46, 40, 56, 60]], atol=1e-4)


@pytest.mark.parametrize(
    ("boxes", "scores", "threshold", "kept"),
    [
        ([], [], 0.4, []),  # nothing detected
        ([[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.9], 0.4, [1, 0]),  # disjoint: both, best first
        ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.6, 0.9], 0.4, [1]),  # duplicates: best one
        ([[0, 0, 10, 10], [0, 5, 10, 15]], [0.9, 0.8], 0.4, [0, 1]),  # IoU 1/3 ≤ 0.4: both kept
        ([[0, 0, 10, 10], [0, 5, 10, 15]], [0.9, 0.8], 0.3, [0]),  # IoU 1/3 > 0.3: suppressed
        ([[0, 0, 10, 10], [0, 6, 10, 16]], [0.9, 0.8], 0.3, [0, 1]),  # IoU 0.25 ≤ 0.3: kept
    ],
)
def test_nms(
    boxes: list[list[float]], scores: list[float], threshold: float, kept: list[int]
) -> None:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    result = nms(xyxy, np.array(scores, np.float32), threshold, max_keep=100)
    assert result.tolist() == kept


def test_nms_keeps_at_most_max_keep() -> None:
    xyxy = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(10)], np.float32)
    assert len(nms(xyxy, np.linspace(1, 0.1, 10).astype(np.float32), 0.4, max_keep=3)) == 3


def test_postprocess_maps_to_original_pixels_and_clips() -> None:
    config = detector_config(
        backend="retinaface-mobilenet",
        score_threshold=0.5,
        box_scale_wh=(1.0, 1.0),
        box_shift_y=0.0,
    )
    priors = anchors(64, 64)
    face = np.zeros(len(priors), np.float32)
    face[0] = 0.9  # first anchor: centre (4, 4), 16 px, at input 64×64 → crosses the corner
    result = postprocess(np.zeros((len(priors), 4), np.float32), face, (64, 64), (32, 32), config)
    np.testing.assert_allclose(result.xyxy, [[0, 0, 6, 6]])  # halved, clipped at 0
    assert result.scores.tolist() == pytest.approx([0.9])
    empty = postprocess(
        np.zeros((len(priors), 4), np.float32),
        np.zeros(len(priors), np.float32),
        (64, 64),
        (32, 32),
        config,
    )
    assert len(empty) == 0


def test_real_model_finds_annotated_faces(shared_dir: Path) -> None:
    """On three crowd photos, most annotated faces are found at IoU 0.5 and boxes stay inside."""
    crowd = shared_dir / "data" / "crowd"
    config = detector_config(
        backend="retinaface-mobilenet", model_path=shared_dir / "models" / "retinaface_mnet025.onnx"
    )
    detector = MobileNetRetinaFace(config)
    assert detector.version == "b7a7acab55e1"
    found = total = 0
    for name in ("maksssksksss0", "maksssksksss1", "maksssksksss100"):
        image = np.asarray(cv2.imread(str(crowd / "images" / f"{name}.jpg")), np.uint8)
        truth = np.array([box for _, box in read_voc(crowd / "annotations" / f"{name}.xml")])
        detections = detector.detect(image)
        height, width = image.shape[:2]
        assert (detections.xyxy >= 0).all()
        assert (detections.xyxy[:, [0, 2]] <= width).all()
        assert (detections.xyxy[:, [1, 3]] <= height).all()
        found += int(match(truth, np.ones(len(truth)), detections.xyxy).sum())
        total += len(truth)
    assert found / total >= 0.6, f"found {found} of {total} annotated faces"
    blank = detector.detect(np.full((240, 320, 3), 127, np.uint8))
    assert len(blank) == 0


@pytest.mark.parametrize("scale", [1.0, 0.5, 1.7])
def test_to_input_is_the_resized_mean_subtracted_frame_channels_first(scale: float) -> None:
    image = np.random.default_rng(4).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    resized = (
        image
        if scale == 1.0
        else cv2.resize(
            image,
            None,
            fx=scale,
            fy=scale,
            interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA,
        )
    )
    expected = (resized.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)[None]
    tensor = to_input(image, scale)
    assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
    np.testing.assert_array_equal(tensor, expected)


def test_session_options_pin_threads_and_never_spin() -> None:
    options = session_options(3)
    assert options.intra_op_num_threads == 3
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
