"""Face-detector backends as plugins, chosen by name in configuration.

Every backend turns a BGR frame into `Detections` (boxes `xyxy` in pixels of the frame it was
given, detector scores), so the rest of the worker never knows which network ran. Each lives
in its own module with its detector class (`Detector`); the configs of all of them are in
`configs` (pydantic only). A backend's module, and with it numpy, OpenCV and its runtime
(ONNX Runtime, `retina-face`), is imported only when its detector is built, so reading
settings and `--help` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from workers.detector.backends.configs import BackendConfig, DetectorConfig, detector_config

if TYPE_CHECKING:
    from workers.detector.backends.base import FaceDetector

BACKENDS: dict[str, str] = {
    "centerface": "workers.detector.backends.centerface",
    "scrfd-2.5g": "workers.detector.backends.scrfd",
    "retinaface-mobilenet": "workers.detector.backends.retinaface_mobilenet",
    "retinaface-resnet50": "workers.detector.backends.retinaface_resnet50",
}
"""Backend name → the module holding its `Detector`."""


def make_detector(config: BackendConfig) -> FaceDetector:
    """The configured backend, loaded and ready (raises with a how-to-fix message if not)."""
    module = importlib.import_module(BACKENDS[str(config.backend)])
    detector: FaceDetector = module.Detector(config)
    return detector


__all__ = [
    "BACKENDS",
    "BackendConfig",
    "DetectorConfig",
    "detector_config",
    "make_detector",
]
