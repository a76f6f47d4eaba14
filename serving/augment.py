"""Training augmentation for surveillance face crops (pure functions, numpy/OpenCV).

Camera faces are small, blurred, JPEG-compressed and unevenly lit. Random down-then-up
scaling also removes a shortcut in the Kaggle set, whose two classes had different source
resolutions: after it, resolution no longer tells the classes apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation."""

    p_rescale: float = 0.6
    min_scale: float = 0.12
    p_blur: float = 0.25
    max_blur_sigma: float = 1.5
    p_jpeg: float = 0.5
    min_jpeg_quality: int = 25
    max_rotate_deg: float = 12.0
    max_shift: float = 0.08
    zoom_range: tuple[float, float] = (0.85, 1.15)
    brightness: float = 0.25
    contrast: float = 0.25


def augment(
    image: npt.NDArray[np.uint8], rng: np.random.Generator, config: AugmentConfig
) -> npt.NDArray[np.uint8]:
    """One randomly augmented copy of an S×S×3 uint8 crop (the input is not modified)."""
    size = image.shape[0]
    out: Any = image  # OpenCV's stubs widen dtypes; the result is cast back to uint8
    if rng.random() < 0.5:
        out = out[:, ::-1]
    angle = rng.uniform(-config.max_rotate_deg, config.max_rotate_deg)
    zoom = rng.uniform(*config.zoom_range)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, zoom)
    matrix[:, 2] += rng.uniform(-config.max_shift, config.max_shift, size=2) * size
    out = cv2.warpAffine(
        np.ascontiguousarray(out), matrix, (size, size), borderMode=cv2.BORDER_REFLECT_101
    )
    if rng.random() < config.p_rescale:
        small = max(4, int(size * rng.uniform(config.min_scale, 1.0)))
        out = cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA)
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.random() < config.p_blur:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, config.max_blur_sigma))
    alpha = 1.0 + rng.uniform(-config.contrast, config.contrast)
    beta = 255.0 * rng.uniform(-config.brightness, config.brightness)
    out = cv2.convertScaleAbs(out, alpha=alpha, beta=beta)
    if rng.random() < config.p_jpeg:
        quality = int(rng.integers(config.min_jpeg_quality, 96))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(out, dtype=np.uint8)
