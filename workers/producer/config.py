"""cameras.yaml: the cameras one producer fleet reads, validated before anything starts.

A file holds optional `defaults` (any camera field except `id` and `source`) and a list of
`cameras`. Each camera's values win over the defaults. Unknown keys are rejected everywhere,
so a typo ("jpg_quality") fails at start-up instead of silently using a default.

Sources are strings whose form says their kind:
- `rtsp://…`, `rtsps://…` — network cameras; `http://…`, `https://…` — MJPEG streams or files;
- `webcam:N` — a local capture device by index;
- `folder:PATH` — a directory of images replayed at `source_fps` (glob / slice pick a subset);
- anything else (optionally `file:PATH`) — a video file.
A source may reference secrets, `${NAME}` or `${file:/run/secrets/x}` (source_secrets.py),
resolved by `CameraConfig.resolved` at start-up.
Relative paths are relative to the producer's working directory (the repository root in demos).
"""

from __future__ import annotations

import builtins
import re
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.common import CameraId, Labels
from workers.producer.source_secrets import malformed_reference, resolve_references

_SLICE = re.compile(r"^(-?\d*):(-?\d*)(?::(\d*))?$")


class SourceKind(StrEnum):
    RTSP = "rtsp"
    HTTP = "http"
    FILE = "file"
    FOLDER = "folder"
    WEBCAM = "webcam"


class CameraSettings(BaseModel):
    """Everything about one camera except who it is and where it streams from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="A disabled camera is validated but not read.")
    fps: float = Field(2.0, gt=0, le=60, description="Target frames per second sent to Kafka.")
    max_resolution_wh: tuple[int, int] = Field(
        (1280, 720), description="Frames larger than this (width, height) are downscaled."
    )
    jpeg_quality: int = Field(85, ge=30, le=100, description="JPEG quality of sent frames.")
    labels: Labels = Field(default_factory=dict)
    realtime: bool = Field(True, description="Video files: replay at their own frame rate.")
    loop: bool = Field(True, description="Files and folders: start again at the end.")
    source_fps: float | None = Field(
        None, gt=0, le=60, description="Folders: images per second replayed (default: fps)."
    )
    glob: str = Field("*.jpg", min_length=1, description="Folders: which files are images.")
    slice: str | None = Field(
        None, description="Folders: 'start:stop[:step]' over the sorted file names."
    )

    @field_validator("max_resolution_wh")
    @classmethod
    def _resolution(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(64 <= side <= 8192 for side in value):
            raise ValueError("both sides must be between 64 and 8192 pixels")
        return value

    @field_validator("slice")
    @classmethod
    def _slice(cls, value: str | None) -> str | None:
        if value is not None and not _SLICE.match(value):
            raise ValueError("expected 'start:stop' or 'start:stop:step' (integers, may be empty)")
        if value is not None and value.count(":") == 2 and value.rsplit(":", 1)[1] == "0":
            raise ValueError("slice step must not be 0")
        return value

    def python_slice(self) -> builtins.slice:
        """The `slice` text as a Python slice (all files when unset)."""
        match = _SLICE.match(self.slice or ":")
        if match is None:  # validated above; kept for the type checker
            raise ValueError(f"bad slice {self.slice!r}")
        start, stop, step = (int(g) if g else None for g in match.groups())
        return slice(start, stop, step)


class CameraConfig(CameraSettings):
    """One camera: id (the Kafka key), source, and its settings."""

    id: CameraId
    source: str = Field(
        min_length=1, max_length=2048, description="Where frames come from (may hold ${…})."
    )
    _resolved: SecretStr | None = PrivateAttr(None)
    """The source with its secret references resolved (`resolved`); never in a repr."""

    def resolved(self, environ: Mapping[str, str]) -> CameraConfig:
        """This camera with its source's secret references resolved from `environ` or their
        files; raises SecretReferenceError naming an unresolvable one."""
        text = resolve_references(self.source, f"camera {self.id}", environ)
        if text is None:
            return self
        camera = self.model_copy()
        camera._resolved = SecretStr(text)
        return camera

    @property
    def _effective_source(self) -> str:
        return self._resolved.get_secret_value() if self._resolved else self.source

    @property
    def kind(self) -> SourceKind:
        return source_kind(self._effective_source)

    @property
    def location(self) -> str:
        """The (resolved) source with its `folder:` / `file:` / `webcam:` prefix removed."""
        source = self._effective_source
        for prefix in ("folder:", "file:", "webcam:"):
            if source.startswith(prefix):
                return source[len(prefix) :]
        return source

    @model_validator(mode="after")
    def _check_source(self) -> CameraConfig:
        bad = malformed_reference(self.source)
        if bad is not None:
            raise ValueError(
                f"malformed secret reference {bad!r}: use ${{NAME}} or ${{file:/absolute/path}}"
            )
        if self.kind is SourceKind.WEBCAM and not self.location.isdigit():
            raise ValueError("webcam source must be 'webcam:N' with a device index")
        if self.kind is not SourceKind.FOLDER and (self.slice or self.source_fps):
            raise ValueError("slice and source_fps apply to folder: sources only")
        return self


def source_kind(source: str) -> SourceKind:
    """The kind of a source string (see the module doc)."""
    lowered = source.lower()
    if lowered.startswith(("rtsp://", "rtsps://")):
        return SourceKind.RTSP
    if lowered.startswith(("http://", "https://")):
        return SourceKind.HTTP
    if lowered.startswith("folder:"):
        return SourceKind.FOLDER
    if lowered.startswith("webcam:"):
        return SourceKind.WEBCAM
    return SourceKind.FILE


class CamerasFile(BaseModel):
    """The whole cameras.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: dict[str, Any] = Field(default_factory=dict)
    cameras: list[CameraConfig] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("the file must be a mapping with 'cameras' (and optional 'defaults')")
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise ValueError("'defaults' must be a mapping")
        unknown = set(defaults) - set(CameraSettings.model_fields)
        if unknown:
            raise ValueError(f"unknown keys in defaults: {', '.join(sorted(unknown))}")
        cameras = data.get("cameras")
        if isinstance(cameras, list):
            data = {
                **data,
                "cameras": [{**defaults, **c} if isinstance(c, dict) else c for c in cameras],
            }
        return data

    @model_validator(mode="after")
    def _unique_ids(self) -> CamerasFile:
        counts = Counter(c.id for c in self.cameras)
        duplicates = [camera_id for camera_id, n in counts.items() if n > 1]
        if duplicates:
            raise ValueError(f"duplicate camera ids: {', '.join(sorted(duplicates))}")
        return self


class ConfigError(ValueError):
    """cameras.yaml is missing, not YAML, or does not validate; the message is for humans."""


def load_cameras(path: Path) -> list[CameraConfig]:
    """All cameras of a cameras.yaml (enabled or not); raises ConfigError with readable lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from error
    return parse_cameras(text, str(path))


def parse_cameras(text: str, origin: str) -> list[CameraConfig]:
    """Cameras from YAML text; `origin` names it in error messages (a path, an env var)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{origin} is not valid YAML: {error}") from error
    try:
        return CamerasFile.model_validate(data).cameras
    except ValidationError as error:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in error.errors()
        ]
        raise ConfigError(f"{origin} is invalid:\n" + "\n".join(lines)) from None
