"""The ONNX backends' recall levers (flip, tiles) on real models and crowd photos, and the
start-up check that refuses weights of another network in one readable line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from devtools.evaluate.scoring import match
from serving.dataset import read_voc
from workers.detector.backends import detector_config, make_detector
from workers.detector.backends.base import OutputSpec, WeightsMismatchError, weights_problem

F32 = np.float32
MODEL_FILES = {
    "scrfd-2.5g": "scrfd_2.5g_kps.onnx",
    "centerface": "centerface.onnx",
    "retinaface-mobilenet": "retinaface_mnet025.onnx",
}
PHOTO = "maksssksksss1.jpg"  # nine faces of 19–36 px
REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ([("a", [1, 1, "h", "w"]), ("b", [1, 2, "h", "w"])], None),
        ([("a", [1, 1, "h", "w"])], "1 outputs ['a'], expected 2"),
        ([("a", [1, 1, "h", "w"]), ("b", [1, 3, "h", "w"])], "'b' has shape [1, 3, 'h', 'w']"),
        ([("a", [1, 1]), ("b", [1])], "'b' has shape [1], expected 2 on axis 1"),
    ],
)
def test_weights_problem_by_position(
    declared: list[tuple[str, list[object]]], problem: str | None
) -> None:
    expected = (OutputSpec(None, 1, 1), OutputSpec(None, 1, 2))
    found = weights_problem(declared, expected)
    assert found == problem if problem is None else problem in str(found)


def test_weights_problem_by_name() -> None:
    expected = (OutputSpec("score", 2, 1), OutputSpec("bbox", 2, 4))
    assert weights_problem([("bbox", [1, 9, 4]), ("score", [1, 9, 1])], expected) is None
    assert "no output named 'score'" in str(weights_problem([("x", [1]), ("bbox", [1])], expected))


@pytest.mark.parametrize(
    ("backend", "wrong_file"),
    [
        ("centerface", "scrfd_2.5g_kps.onnx"),  # loads and converts, outputs give it away
        ("centerface", "retinaface_mnet025.onnx"),
        ("scrfd-2.5g", "centerface.onnx"),  # the graph rewrite itself refuses it
        ("retinaface-mobilenet", "centerface.onnx"),
        ("centerface", "README.md"),  # not a model at all
    ],
)
def test_wrong_weights_are_refused_at_start(
    backend: str, wrong_file: str, shared_dir: Path
) -> None:
    path = shared_dir / "models" / wrong_file
    with pytest.raises(WeightsMismatchError) as caught:
        make_detector(detector_config(backend=backend, model_path=path, threads=1))
    message = str(caught.value)
    assert "\n" not in message
    assert f"are not {backend}'s" in message and str(path) in message
    assert "model_files --backend" in message  # says how to get the right file


def test_worker_with_wrong_weights_exits_with_one_line(shared_dir: Path) -> None:
    """`maskwatch detector` stops before it opens a port or a connection."""
    env = {
        **os.environ,
        "MASKWATCH_DETECTOR_DETECTOR__BACKEND": "centerface",
        "MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH": str(shared_dir / "models/scrfd_2.5g_kps.onnx"),
    }
    done = subprocess.run(
        [sys.executable, "-c", "from workers.cli import main; main()", "detector"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: detector weights "), done.stderr
    assert "are not centerface's (9 outputs" in lines[-1]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        {"backend": "centerface", "tile_px": 200, "tile_overlap_px": 100},  # no core left
        {"backend": "retinaface-mobilenet", "flip": True},  # levers are the ONNX backends'
    ],
)
def test_lever_config_rejects(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        detector_config(**overrides)


def _photo(shared_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    crowd = shared_dir / "data" / "crowd"
    image = np.asarray(cv2.imread(str(crowd / "images" / PHOTO)), np.uint8)
    annotation = crowd / "annotations" / PHOTO.replace(".jpg", ".xml")
    return image, np.array([box for _, box in read_voc(annotation)], F32)


@pytest.mark.parametrize("backend", ["centerface", "scrfd-2.5g"])
@pytest.mark.parametrize(
    "levers",
    [
        {"flip": True},
        {
            "upscale_to_px": 1200,
            "tile_px": 512,
            "tile_overlap_px": 128,
        },  # 3 × 2 tiles, faces ≤ 108 px
    ],
)
def test_levers_find_the_faces_the_whole_frame_finds(
    backend: str, levers: dict[str, object], shared_dir: Path
) -> None:
    """With a lever on, the detector still finds the annotated faces about as well as without
    it and gives one box per face (the pooled views are merged, not stacked)."""
    image, truth = _photo(shared_dir)
    model = shared_dir / "models" / MODEL_FILES[backend]
    plain = make_detector(detector_config(backend=backend, model_path=model, threads=1))
    pooled = make_detector(detector_config(backend=backend, model_path=model, threads=1, **levers))
    hits = {}
    for name, detector in (("plain", plain), ("pooled", pooled)):
        found = detector.detect(image)
        assert found.landmarks is not None and found.landmarks.shape == (len(found), 5, 2)
        matched = match(found.xyxy, found.scores, truth)
        hits[name] = int(matched.sum())
        assert matched.sum() / len(found) >= 0.7, (name, int(matched.sum()), len(found))
    assert hits["pooled"] >= hits["plain"] - 1, hits
    assert hits["pooled"] >= 0.6 * len(truth), (hits, len(truth))


def test_flip_is_symmetric(shared_dir: Path) -> None:
    """Flip pools a frame and its mirror, so a mirrored frame gives the mirrored faces."""
    image, _ = _photo(shared_dir)
    model = shared_dir / "models" / MODEL_FILES["centerface"]
    detector = make_detector(
        detector_config(backend="centerface", model_path=model, threads=1, flip=True)
    )
    found = detector.detect(image)
    mirrored = detector.detect(np.ascontiguousarray(image[:, ::-1]))
    width = image.shape[1]
    back = np.stack(
        [
            width - mirrored.xyxy[:, 2],
            mirrored.xyxy[:, 1],
            width - mirrored.xyxy[:, 0],
            mirrored.xyxy[:, 3],
        ],
        axis=1,
    )
    assert len(found) > 0
    assert abs(len(found) - len(mirrored)) <= 1
    assert match(back, mirrored.scores, found.xyxy, 0.9).sum() >= len(found) - 1
