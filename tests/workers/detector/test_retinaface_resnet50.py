"""The ResNet-50 backend, offline: weights resolution and output parsing.

Its weights download only on a machine with internet, so inference itself is not tested here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workers.detector.backends import detector_config
from workers.detector.backends.retinaface_resnet50 import detections_from_faces, resolve_weights
from workers.detector.model_files import ModelNotFoundError

CONFIG = detector_config(backend="retinaface-resnet50", box_scale_wh=(1.0, 1.0), box_shift_y=0.0)


def test_package_output_becomes_detections_in_frame_pixels() -> None:
    faces = {
        "face_1": {"score": 0.99, "facial_area": [10, 10, 30, 30]},
        "face_2": {"score": 0.95, "facial_area": [11, 10, 31, 30]},  # duplicate: NMS drops it
        "face_3": {"score": 0.90, "facial_area": [100, 40, 140, 80]},
    }
    detections = detections_from_faces(faces, scale=2.0, config=CONFIG, frame_wh=(60, 40))
    np.testing.assert_allclose(detections.xyxy, [[5, 5, 15, 15], [50, 20, 60, 40]])
    np.testing.assert_allclose(detections.scores, [0.99, 0.90])
    assert len(detections_from_faces({}, 1.0, CONFIG, (60, 40))) == 0


def test_missing_weights_say_how_to_provide_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH"):
        resolve_weights(None)
    cached = tmp_path / ".deepface" / "weights" / "retinaface.onnx"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_weights(None) == cached  # the package's cache dir (a volume in Kubernetes)
    assert resolve_weights(cached) == cached
