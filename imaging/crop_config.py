"""The face-crop settings, apart from the crop code so that reading service settings (and
`--help`) does not import OpenCV and numpy; `imaging.crop` uses and re-exports it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CropConfig(BaseModel):
    """How a detected face box becomes a classifier input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size_px: int = Field(128, ge=8, le=1024, description="Side of the square classifier input.")
    margin: float = Field(
        0.15, ge=0.0, le=2.0, description="Context on every side, a fraction of the longer side."
    )
    small_face_px: int = Field(
        32, ge=0, le=1024, description="Faces whose shorter side is below this are enlarged."
    )
    small_face_enlarge: float = Field(
        0.35, ge=0.0, le=4.0, description="Extra enlargement of small faces (of the longer side)."
    )
