"""Test-time views of a frame for a face detector: overlapping tiles and the mirror image.

A detector may run on several views of one frame (tiles of a large frame, the frame flipped
left-right) and pool what each view found before the one NMS (`imaging.boxes.nms`) merges
duplicates. These functions map boxes and landmarks between a view and the frame, and pick
which tile decides a face, so the merge sees each face once at full size (pure numpy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

MIRRORED_LANDMARKS = (1, 0, 2, 4, 3)
"""Landmark order after a left-right flip: the eyes and the mouth corners swap places
(RetinaFace/SCRFD/CenterFace order: left eye, right eye, nose, left and right mouth corner,
left/right as seen in the image)."""


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile starts along one axis: the fewest tiles of `tile` px that cover
    `length` with at least `overlap` px shared by neighbours."""
    if length <= tile:
        return [0]
    count = -(-(length - overlap) // (tile - overlap))
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def _cores(starts: list[int], tile: int, length: int) -> list[tuple[float, float]]:
    """Each tile's core along one axis: from the middle of its overlap with the previous tile
    to the middle of its overlap with the next (the frame's edges are open)."""
    ends = [min(start + tile, length) for start in starts]
    cuts = [(starts[i + 1] + ends[i]) / 2 for i in range(len(starts) - 1)]
    return list(zip([-np.inf, *cuts], [*cuts, np.inf], strict=True))


@dataclass(frozen=True)
class Tile:
    """One view of a large frame.

    Attributes:
        window: (x1, y1, x2, y2) of the tile in frame pixels, end-exclusive.
        core: (x1, y1, x2, y2) of the part of the frame this tile decides (`decided_here`):
            the tile less half of each overlap with a neighbour; the cores of `tiles`
            partition the plane.
    """

    window: tuple[int, int, int, int]
    core: tuple[float, float, float, float]


def tiles(frame_wh: tuple[int, int], tile_px: int, overlap_px: int) -> list[Tile]:
    """Tiles of at most `tile_px` × `tile_px` covering a frame, neighbours overlapping by at
    least `overlap_px`, rows top to bottom; a frame no larger than a tile is one tile.

    Raises ValueError unless 0 ≤ overlap_px < tile_px / 2 (each tile needs a core of its own).
    """
    if not 0 <= 2 * overlap_px < tile_px:
        raise ValueError(f"overlap {overlap_px} px must be under half the tile {tile_px} px")
    width, height = frame_wh
    xs, ys = _starts(width, tile_px, overlap_px), _starts(height, tile_px, overlap_px)
    x_cores, y_cores = _cores(xs, tile_px, width), _cores(ys, tile_px, height)
    return [
        Tile((x, y, min(x + tile_px, width), min(y + tile_px, height)), (cx1, cy1, cx2, cy2))
        for y, (cy1, cy2) in zip(ys, y_cores, strict=True)
        for x, (cx1, cx2) in zip(xs, x_cores, strict=True)
    ]


def decided_here(xyxy: F32, tile: Tile) -> npt.NDArray[np.bool_]:
    """One flag per N×4 box (in frame pixels) found in `tile`: is its centre in the tile's
    core?

    Every face is then kept from exactly one tile, the one where it sits whole if it is no
    larger than the overlap; a box cut by a tile edge (a partial face, centred outside that
    tile's core) is dropped instead of reaching the NMS as a second, smaller box.
    """
    x1, y1, x2, y2 = tile.core
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2
    return np.asarray((cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2), np.bool_)


def mirror_boxes(xyxy: F32, width: int) -> F32:
    """N×4 boxes found in a left-right flipped view of `width` px → the unflipped view's
    pixels (a new array)."""
    out = np.empty_like(xyxy)
    out[:, 0] = width - xyxy[:, 2]
    out[:, 2] = width - xyxy[:, 0]
    out[:, 1] = xyxy[:, 1]
    out[:, 3] = xyxy[:, 3]
    return out


def mirror_landmarks(points: F32, width: int) -> F32:
    """N×5×2 landmarks (x, y) found in a flipped view → the unflipped view, in the usual order
    (left eye first, see `MIRRORED_LANDMARKS`; a new array)."""
    out = points[:, MIRRORED_LANDMARKS].copy()
    out[..., 0] = width - out[..., 0]
    return out
