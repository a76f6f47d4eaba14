"""Every face-detector backend's config, in one module that imports only pydantic.

Settings (`maskwatch detector --help`, reading the environment) need the configs but not the
detectors, whose modules load numpy, OpenCV and their runtime; keeping the configs here lets
settings be read without importing any of that. Each backend module holds its detector and
reads its config from here; `DetectorConfig` is the discriminated union (`backend` picks one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


class BackendConfig(BaseModel):
    """The fields every backend has; each backend sets its own calibrated defaults.

    Faces in city cameras are tiny (a median crowd face is ~21 px), so small frames are
    upscaled before detection; huge frames are capped so one 4K frame cannot stall a worker.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field(description="Face detector backend (each backend narrows it).")
    model_path: Path | None = Field(None, description="Detector weights file (default: resolved).")
    score_threshold: float = Field(0.78, ge=0.0, le=1.0, description="Minimum face confidence.")
    nms_threshold: float = Field(0.4, gt=0.0, le=1.0, description="IoU above which NMS drops.")
    upscale_to_px: int = Field(
        1200, ge=64, le=8192, description="Frames whose longer side is shorter are upscaled to it."
    )
    max_upscale: float = Field(3.0, ge=1.0, le=8.0, description="Largest upscaling factor.")
    max_side_px: int = Field(
        2048, ge=64, le=8192, description="Frames whose longer side is longer are downscaled."
    )
    box_scale_wh: tuple[float, float] = Field(
        (1.1, 1.0), description="Box width/height factors (calibration to annotated faces)."
    )
    box_shift_y: float = Field(
        0.14, ge=-1.0, le=1.0, description="Box centre shift down, as a fraction of its height."
    )
    max_faces: int = Field(512, ge=1, le=10000, description="Most faces kept per frame.")
    threads: int = Field(0, ge=0, le=64, description="Inference threads (0 = the CPU share).")

    @model_validator(mode="after")
    def _bounds(self) -> BackendConfig:
        if self.upscale_to_px > self.max_side_px:
            raise ValueError("upscale_to_px must not exceed max_side_px")
        if not all(0.25 <= f <= 4.0 for f in self.box_scale_wh):
            raise ValueError(f"box_scale_wh factors must be in [0.25, 4], got {self.box_scale_wh}")
        return self


class CenterFaceConfig(BackendConfig):
    """CenterFace settings; defaults calibrated on the crowd train + val photos at 1,000 px
    (tests/benchmarks/calibrate_detectors.py): the score giving precision 0.90, NMS 0.6 (crowds
    overlap), boxes 5 % wider and moved down 0.12 × height to match the annotators' boxes."""

    backend: Literal["centerface"] = Field("centerface", description="Face detector backend.")
    score_threshold: float = Field(0.49, ge=0.0, le=1.0, description="Minimum face confidence.")
    nms_threshold: float = Field(0.6, gt=0.0, le=1.0, description="IoU above which NMS drops.")
    upscale_to_px: int = Field(
        1000, ge=64, le=8192, description="Frames whose longer side is shorter are upscaled to it."
    )
    max_side_px: int = Field(
        1280, ge=64, le=8192, description="Frames whose longer side is longer are downscaled."
    )
    box_scale_wh: tuple[float, float] = Field(
        (1.05, 1.0), description="Box width/height factors (calibration to annotated faces)."
    )
    box_shift_y: float = Field(
        0.12, ge=-1.0, le=1.0, description="Box centre shift down, as a fraction of its height."
    )


class ScrfdConfig(BackendConfig):
    """SCRFD-2.5G settings; defaults calibrated on the crowd train + val photos at 1,000 px
    (tests/benchmarks/calibrate_detectors.py): the score giving precision 0.90, NMS 0.6,
    boxes 5 % wider, 10 % shorter and moved down 0.12 × height (the annotators' boxes)."""

    backend: Literal["scrfd-2.5g"] = Field("scrfd-2.5g", description="Face detector backend.")
    score_threshold: float = Field(0.47, ge=0.0, le=1.0, description="Minimum face confidence.")
    nms_threshold: float = Field(0.6, gt=0.0, le=1.0, description="IoU above which NMS drops.")
    upscale_to_px: int = Field(
        1000, ge=64, le=8192, description="Frames whose longer side is shorter are upscaled to it."
    )
    max_side_px: int = Field(
        1280, ge=64, le=8192, description="Frames whose longer side is longer are downscaled."
    )
    box_scale_wh: tuple[float, float] = Field(
        (1.05, 0.9), description="Box width/height factors (calibration to annotated faces)."
    )
    box_shift_y: float = Field(
        0.12, ge=-1.0, le=1.0, description="Box centre shift down, as a fraction of its height."
    )


class RetinaFaceMobileNetConfig(BackendConfig):
    """RetinaFace MobileNet-0.25 (defaults calibrated on the crowd train photos)."""

    backend: Literal["retinaface-mobilenet"] = Field(
        "retinaface-mobilenet", description="Face detector backend."
    )


class RetinaFaceResNet50Config(BackendConfig):
    """RetinaFace ResNet-50 through the `retina-face` package (the method's detector)."""

    backend: Literal["retinaface-resnet50"] = Field(
        "retinaface-resnet50", description="Face detector backend."
    )


AnyBackendConfig = (
    CenterFaceConfig | ScrfdConfig | RetinaFaceMobileNetConfig | RetinaFaceResNet50Config
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
