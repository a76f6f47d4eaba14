"""The one face-crop function shared by training and the detector workers.

The research method improved precision and recall with two tricks: faces smaller than a size
threshold are cut with an enlarged box (more context around a 15 px face helps the classifier
see the mask edge), and every crop is resized to the classifier's input before classifying.
Training cuts its crowd faces with exactly this code so the classifier sees at training time
what the detector will hand it in production.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from imaging.crop_config import CropConfig as CropConfig  # its users import it from here

ImageBGR = npt.NDArray[np.uint8]
"""An H×W×3 uint8 image in OpenCV's BGR channel order."""


def square_crop_box(
    xyxy: tuple[float, float, float, float], resolution_wh: tuple[int, int], config: CropConfig
) -> tuple[int, int, int, int]:
    """Square box (x1, y1, x2, y2; x2/y2 exclusive) around a face, clamped to the image.

    The box is centred on the face, its side is the face's longer side plus the margin (and the
    small-face enlargement when the face's shorter side is below the threshold). Clamping keeps
    the box inside the image, so a face at the border gives a non-square box; `crop_face`
    resizes it to a square anyway. The result is never empty for a box that overlaps the image.
    """
    x1, y1, x2, y2 = xyxy
    width, height = resolution_wh
    face_w, face_h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    longer = max(face_w, face_h)
    grow = config.margin
    if min(face_w, face_h) < config.small_face_px:
        grow += config.small_face_enlarge
    side = longer * (1.0 + 2.0 * grow)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    bx1 = int(np.clip(np.floor(cx - side / 2.0), 0, max(width - 1, 0)))
    by1 = int(np.clip(np.floor(cy - side / 2.0), 0, max(height - 1, 0)))
    bx2 = int(np.clip(np.ceil(cx + side / 2.0), bx1 + 1, width))
    by2 = int(np.clip(np.ceil(cy + side / 2.0), by1 + 1, height))
    return bx1, by1, bx2, by2


def crop_face(
    image: ImageBGR, xyxy: tuple[float, float, float, float], config: CropConfig
) -> ImageBGR:
    """Cut one face out of `image` and resize it to `config.size_px` square (a new array).

    Upscaling uses bicubic interpolation (small faces are the norm), downscaling uses area
    averaging, which avoids aliasing.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H×W×3, got shape {image.shape}")
    height, width = image.shape[:2]
    bx1, by1, bx2, by2 = square_crop_box(xyxy, (width, height), config)
    patch = image[by1:by2, bx1:bx2]
    enlarging = max(patch.shape[0], patch.shape[1]) < config.size_px
    interpolation = cv2.INTER_CUBIC if enlarging else cv2.INTER_AREA
    resized = cv2.resize(patch, (config.size_px, config.size_px), interpolation=interpolation)
    return np.ascontiguousarray(resized, dtype=np.uint8)


def crop_faces(
    image: ImageBGR, boxes_xyxy: npt.NDArray[np.floating], config: CropConfig
) -> npt.NDArray[np.uint8]:
    """Crops for N boxes as an N×S×S×3 uint8 batch (BGR); an empty batch for N = 0."""
    if boxes_xyxy.ndim != 2 or boxes_xyxy.shape[1] != 4:
        raise ValueError(f"boxes_xyxy must be N×4, got shape {boxes_xyxy.shape}")
    if len(boxes_xyxy) == 0:
        return np.zeros((0, config.size_px, config.size_px, 3), dtype=np.uint8)
    crops = []
    for box in boxes_xyxy:
        x1, y1, x2, y2 = (float(v) for v in box)
        crops.append(crop_face(image, (x1, y1, x2, y2), config))
    return np.stack(crops)


def fit_to_square(image: ImageBGR, size_px: int) -> ImageBGR:
    """Resize a whole picture (a face photo from a class folder) to a square, padding the
    shorter side with edge pixels so faces keep their aspect ratio."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    padded = cv2.copyMakeBorder(
        image, top, side - height - top, left, side - width - left, cv2.BORDER_REPLICATE
    )
    interpolation = cv2.INTER_CUBIC if side < size_px else cv2.INTER_AREA
    resized = cv2.resize(padded, (size_px, size_px), interpolation=interpolation)
    return np.asarray(resized, dtype=np.uint8)
