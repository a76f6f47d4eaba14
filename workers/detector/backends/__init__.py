"""Face-detector backends as plugins, chosen by name in configuration.

Every backend turns a BGR frame into `Detections` (boxes `xyxy` in pixels of the frame it was
given, detector scores), so the rest of the worker never knows which network ran. Each lives
in its own module with its own config model (`Config`) and detector class (`Detector`);
`DetectorConfig` is the discriminated union of those models (the `backend` field picks one).
Backend modules import their runtime (ONNX Runtime, `retina-face`) only when a detector is
built, so reading settings and `--help` stay fast.
"""

from __future__ import annotations

from types import ModuleType
from typing import Annotated

from pydantic import Field, TypeAdapter

from workers.detector.backends import centerface, retinaface_mobilenet, retinaface_resnet50, scrfd
from workers.detector.backends.base import BackendConfig, FaceDetector

BACKENDS: dict[str, ModuleType] = {
    "centerface": centerface,
    "scrfd-2.5g": scrfd,
    "retinaface-mobilenet": retinaface_mobilenet,
    "retinaface-resnet50": retinaface_resnet50,
}
"""Backend name → its module (with `Config` and `Detector`)."""

AnyBackendConfig = (
    centerface.Config | scrfd.Config | retinaface_mobilenet.Config | retinaface_resnet50.Config
)
DetectorConfig = Annotated[AnyBackendConfig, Field(discriminator="backend")]
"""One backend's config; `{"backend": "<name>", ...}` validates into the right model."""
DEFAULT_BACKEND = "centerface"
"""The best detector whose weights' licence (MIT) allows a city deployment; SCRFD's weights
are InsightFace's, for non-commercial research only, so it is opt-in."""

_ADAPTER: TypeAdapter[AnyBackendConfig] = TypeAdapter(DetectorConfig)


def detector_config(**fields: object) -> AnyBackendConfig:
    """A validated config from plain fields (`backend` defaults to the default backend)."""
    fields.setdefault("backend", DEFAULT_BACKEND)
    return _ADAPTER.validate_python(fields)


def make_detector(config: BackendConfig) -> FaceDetector:
    """The configured backend, loaded and ready (raises with a how-to-fix message if not)."""
    detector: FaceDetector = BACKENDS[str(config.backend)].Detector(config)
    return detector


__all__ = [
    "BACKENDS",
    "BackendConfig",
    "DetectorConfig",
    "FaceDetector",
    "detector_config",
    "make_detector",
]
