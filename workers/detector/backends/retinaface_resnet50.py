"""RetinaFace-ResNet50 through the `retina-face` package (extra `retinaface`): the method's
detector, best recall, several times slower than the MobileNet default.

Backend choice: the package runs on TensorFlow, PyTorch or ONNX Runtime. Its TensorFlow path
switches Keras to legacy mode when `tf-keras` is installed, which would break Keras 3 code in
the same process; so this backend pins the package to ONNX Runtime (DEEPFACE_BACKEND_ENGINE
=onnx, set before the package is imported) and builds the session itself from a weights file.

Weights: `retinaface.onnx` from the configured path, else the package's cache
(`$DEEPFACE_HOME/.deepface/weights/`, a mounted volume in Kubernetes). The package would
download a missing file at run time; this backend never lets it (workers must start
deterministically), and says how to provision the file instead.

OpenCV: the package depends on `opencv-contrib-python-headless`, which ships the same `cv2`
module as the `opencv-python-headless` the other stages use (a superset). Installing both
makes the last one win on disk; see the README's install line for the ResNet image, which
installs the contrib build alone.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from imaging.boxes import adjust_boxes, nms, to_frame
from imaging.crop import ImageBGR
from imaging.detections import Detections
from workers.detector.backends.base import detection_scale, resized
from workers.detector.backends.configs import BackendConfig
from workers.detector.model_files import ModelNotFoundError

WEIGHTS_FILE = "retinaface.onnx"
LICENCE = "MIT (serengil/retinaface weights and package)"
WEIGHTS_URL = "https://github.com/serengil/deepface_models/releases/download/v1.0/retinaface.onnx"


def package_cache_path() -> Path:
    """Where the `retina-face` package keeps its weights ($DEEPFACE_HOME or the home dir)."""
    home = Path(os.environ.get("DEEPFACE_HOME", str(Path.home())))
    return home / ".deepface" / "weights" / WEIGHTS_FILE


def resolve_weights(configured: Path | None) -> Path:
    """The ONNX weights file to load, or ModelNotFoundError saying how to provide it."""
    candidate = configured or package_cache_path()
    if candidate.is_file():
        return candidate
    raise ModelNotFoundError(
        f"RetinaFace-ResNet50 weights not found at {candidate}. Download {WEIGHTS_URL} on a "
        "machine with internet and set MASKWATCH_DETECTOR_DETECTOR__MODEL_PATH to it, or place "
        f"it in {package_cache_path().parent} (DEEPFACE_HOME selects the folder)."
    )


def detections_from_faces(
    faces: dict[str, Any], scale: float, config: BackendConfig, frame_wh: tuple[int, int]
) -> Detections:
    """The package's `{"face_1": {"score", "facial_area": [x1, y1, x2, y2]}, ...}` for a frame
    resized by `scale` → calibrated, NMS-filtered detections in original frame pixels."""
    if not faces:
        return Detections.empty()
    xyxy = np.array([f["facial_area"] for f in faces.values()], np.float32).reshape(-1, 4)
    scores = np.array([f["score"] for f in faces.values()], np.float32)
    kept = nms(xyxy, scores, config.nms_threshold, config.max_faces)
    boxes = adjust_boxes(xyxy[kept] / scale, config.box_scale_wh, config.box_shift_y)
    return Detections(to_frame(boxes, frame_wh, frame_wh), scores[kept])


class ResNetRetinaFace:
    """The `retina-face` package's ResNet-50 RetinaFace on ONNX Runtime."""

    name = "retinaface-resnet50"
    licence = LICENCE

    def __init__(self, config: BackendConfig) -> None:
        import onnxruntime as ort

        weights = resolve_weights(config.model_path)
        os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "onnx")
        try:
            from retinaface import RetinaFace
            from retinaface.commons import backend_utils
            from retinaface.model import retinaface_onnx_model
        except ImportError as error:
            raise ModelNotFoundError(
                "the retinaface-resnet50 detector needs the `retina-face` package: "
                "pip install 'maskwatch[retinaface]'"
            ) from error
        if not backend_utils.is_onnx():
            raise RuntimeError(
                "retina-face must run on ONNX Runtime here: unset DEEPFACE_BACKEND_ENGINE or "
                "set it to onnx"
            )
        self.config = config
        self.version = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
        session = ort.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
        self._model = retinaface_onnx_model.RetinaFace(session)
        self._detect_faces = RetinaFace.detect_faces

    def detect(self, image: ImageBGR) -> Detections:
        height, width = image.shape[:2]
        scale = detection_scale((width, height), self.config)
        faces = self._detect_faces(
            resized(image, scale),
            threshold=self.config.score_threshold,
            model=self._model,
            allow_upscaling=False,
        )
        return detections_from_faces(faces, scale, self.config, (width, height))


Detector = ResNetRetinaFace
