"""Every face-detector backend's config, in one module that imports only pydantic.

Settings (`maskwatch detector --help`, reading the environment) need the configs but not the
detectors, whose modules load numpy, OpenCV and their runtime; keeping the configs here lets
settings be read without importing any of that. Each backend module holds its detector and
reads its config from here; `DetectorConfig` is the discriminated union (`backend` picks one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


def score_field(default: float) -> Any:
    """The score threshold field: one declaration, each backend its own calibrated default."""
    return Field(default, ge=0.0, le=1.0, description="Minimum face confidence.")


def nms_field(default: float) -> Any:
    return Field(default, gt=0.0, le=1.0, description="IoU above which NMS drops.")


def upscale_field(default: int) -> Any:
    return Field(
        default,
        ge=64,
        le=8192,
        description="Frames whose longer side is shorter are upscaled to it.",
    )


def max_side_field(default: int) -> Any:
    return Field(
        default, ge=64, le=8192, description="Frames whose longer side is longer are downscaled."
    )


def box_scale_field(default: tuple[float, float]) -> Any:
    return Field(default, description="Box width/height factors (calibration to annotated faces).")


def box_shift_field(default: float) -> Any:
    return Field(
        default, ge=-1.0, le=1.0, description="Box centre shift down, as a fraction of its height."
    )


class BackendConfig(BaseModel):
    """The fields every backend has; each backend sets its own calibrated defaults.

    Faces in city cameras are tiny (a median crowd face is ~21 px), so small frames are
    upscaled before detection; huge frames are capped so one 4K frame cannot stall a worker.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field(description="Face detector backend (each backend narrows it).")
    model_path: Path | None = Field(None, description="Detector weights file (default: resolved).")
    score_threshold: float = score_field(0.78)
    nms_threshold: float = nms_field(0.4)
    upscale_to_px: int = upscale_field(1200)
    max_upscale: float = Field(3.0, ge=1.0, le=8.0, description="Largest upscaling factor.")
    max_side_px: int = max_side_field(2048)
    box_scale_wh: tuple[float, float] = box_scale_field((1.1, 1.0))
    box_shift_y: float = box_shift_field(0.14)
    max_faces: int = Field(512, ge=1, le=10000, description="Most faces kept per frame.")
    threads: int = Field(0, ge=0, le=64, description="Inference threads (0 = the CPU share).")

    @model_validator(mode="after")
    def _bounds(self) -> BackendConfig:
        if self.upscale_to_px > self.max_side_px:
            raise ValueError("upscale_to_px must not exceed max_side_px")
        if not all(0.25 <= f <= 4.0 for f in self.box_scale_wh):
            raise ValueError(f"box_scale_wh factors must be in [0.25, 4], got {self.box_scale_wh}")
        return self


class OnnxBackendConfig(BackendConfig):
    """`BackendConfig` plus the test-time views SCRFD and CenterFace can pool (all off by
    default: each costs a network run per view; docs/notes/issue-15.md has the measured
    trade-offs). The views' candidates meet in the one NMS, so a face seen twice is kept once.
    """

    flip: bool = Field(False, description="Also detect on the left-right mirrored frame.")
    tile_px: int = Field(
        0,
        ge=0,
        le=8192,
        description="Detect on overlapping tiles of at most this many px when the scaled "
        "frame is larger (0 = whole frame at once).",
    )
    tile_overlap_px: int = Field(
        96, ge=0, le=2048, description="Least overlap of neighbouring tiles (≥ largest face)."
    )

    @model_validator(mode="after")
    def _tiles_fit(self) -> OnnxBackendConfig:
        if self.tile_px and not 2 * self.tile_overlap_px < self.tile_px:
            raise ValueError("tile_overlap_px must be under half of tile_px")
        return self


class CenterFaceConfig(OnnxBackendConfig):
    """CenterFace settings. Small frames are upscaled to 800 px: on the held-out crowd photos
    that finds as many faces as 1,000 px (recall at P>=0.90 0.849 vs 0.848) for 0.61x the CPU
    (tests/benchmarks/bench_recall_levers.py). The score is the one giving precision 0.90 at
    800 px on the calibration photos (every 4th train + val photo); NMS 0.6 (crowds overlap);
    boxes 5 % wider and moved down 0.12 x height to match the annotators' boxes
    (tests/benchmarks/calibrate_detectors.py)."""

    backend: Literal["centerface"] = Field("centerface", description="Face detector backend.")
    score_threshold: float = score_field(0.46)
    nms_threshold: float = nms_field(0.6)
    upscale_to_px: int = upscale_field(800)
    max_side_px: int = max_side_field(1280)
    box_scale_wh: tuple[float, float] = box_scale_field((1.05, 1.0))
    box_shift_y: float = box_shift_field(0.12)


class ScrfdConfig(OnnxBackendConfig):
    """SCRFD-2.5G settings; defaults calibrated on the crowd train + val photos at 1,000 px
    (tests/benchmarks/calibrate_detectors.py): the score giving precision 0.90, NMS 0.6,
    boxes 5 % wider, 10 % shorter and moved down 0.12 × height (the annotators' boxes)."""

    backend: Literal["scrfd-2.5g"] = Field("scrfd-2.5g", description="Face detector backend.")
    score_threshold: float = score_field(0.47)
    nms_threshold: float = nms_field(0.6)
    upscale_to_px: int = upscale_field(1000)
    max_side_px: int = max_side_field(1280)
    box_scale_wh: tuple[float, float] = box_scale_field((1.05, 0.9))
    box_shift_y: float = box_shift_field(0.12)


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
