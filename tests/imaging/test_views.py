"""Test-time views: tiles cover the frame with the promised overlap, their cores decide every
face once and whole, and mirrored boxes/landmarks map back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.views import decided_here, mirror_boxes, mirror_landmarks, tiles

F32 = np.float32


@pytest.mark.parametrize(
    ("frame_wh", "tile_px", "overlap_px", "grid"),
    [
        ((300, 200), 640, 96, (1, 1)),  # smaller than a tile: itself
        ((640, 640), 640, 96, (1, 1)),  # exactly a tile
        ((1200, 900), 640, 96, (3, 2)),  # two tiles of 640 would overlap by only 80 px
        ((1920, 1080), 1024, 128, (2, 2)),
        ((4000, 700), 1000, 0, (4, 1)),  # no overlap asked: tiles just meet
    ],
)
def test_tiles_cover_with_overlap(
    frame_wh: tuple[int, int], tile_px: int, overlap_px: int, grid: tuple[int, int]
) -> None:
    found = tiles(frame_wh, tile_px, overlap_px)
    assert len(found) == grid[0] * grid[1]
    covered = np.zeros(frame_wh[::-1], np.int64)
    for tile in found:
        x1, y1, x2, y2 = tile.window
        assert 0 <= x1 < x2 <= frame_wh[0] and 0 <= y1 < y2 <= frame_wh[1]
        assert x2 - x1 <= tile_px and y2 - y1 <= tile_px
        covered[y1:y2, x1:x2] += 1
    assert (covered >= 1).all()
    xs = sorted({t.window[0] for t in found})
    ends = sorted({t.window[2] for t in found})
    assert all(ends[i] - xs[i + 1] >= overlap_px for i in range(len(xs) - 1))


def test_tiles_reject_an_overlap_of_half_a_tile() -> None:
    with pytest.raises(ValueError, match="under half"):
        tiles((1000, 1000), 200, 100)


def test_cores_decide_every_face_once_and_whole() -> None:
    """Random faces no larger than the overlap: exactly one tile decides each, and the face
    lies whole inside that tile (so the tile saw all of it)."""
    frame_wh, overlap = (1500, 1000), 96
    found = tiles(frame_wh, 512, overlap)
    rng = np.random.default_rng(7)
    size = rng.uniform(4, overlap, (2000, 1))
    x1 = rng.uniform(0, frame_wh[0] - size[:, 0])
    y1 = rng.uniform(0, frame_wh[1] - size[:, 0])
    boxes = np.stack([x1, y1, x1 + size[:, 0], y1 + size[:, 0]], axis=1).astype(F32)
    deciders = np.stack([decided_here(boxes, tile) for tile in found])
    assert (deciders.sum(axis=0) == 1).all()
    for index, tile in enumerate(found):
        mine = boxes[deciders[index]]
        left, top, right, bottom = tile.window
        assert (mine[:, 0] >= left).all() and (mine[:, 2] <= right).all()
        assert (mine[:, 1] >= top).all() and (mine[:, 3] <= bottom).all()


def test_a_single_tile_decides_everything() -> None:
    (only,) = tiles((300, 200), 640, 0)
    boxes = np.array([[-5, -5, 1, 1], [290, 190, 310, 210]], F32)  # even past the edges
    assert decided_here(boxes, only).all()


def test_mirror_boxes() -> None:
    boxes = np.array([[10, 20, 30, 60], [0, 0, 100, 5]], F32)
    out = mirror_boxes(boxes, 100)
    np.testing.assert_array_equal(out, [[70, 20, 90, 60], [0, 0, 100, 5]])
    np.testing.assert_array_equal(mirror_boxes(out, 100), boxes)


def test_mirror_landmarks_swap_sides() -> None:
    """In the flipped view the network's 'left eye' is the face's other eye: after mapping
    back, the left eye (image left) comes first again."""
    flipped = np.array([[[10, 5], [30, 5], [20, 15], [12, 25], [28, 25]]], F32)
    out = mirror_landmarks(flipped, 100)
    np.testing.assert_array_equal(out[0], [[70, 5], [90, 5], [80, 15], [72, 25], [88, 25]])
    assert out[0, 0, 0] < out[0, 1, 0] and out[0, 3, 0] < out[0, 4, 0]
    np.testing.assert_array_equal(mirror_landmarks(out, 100), flipped)
