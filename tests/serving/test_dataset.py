"""Training data: VOC parsing, near-duplicate grouping, deterministic splits, packing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from imaging.crop import CropConfig
from serving.dataset import (
    CROWD_SPLIT,
    SOURCES,
    SPLITS,
    build,
    crowd_faces,
    crowd_photo_split,
    decode_all,
    difference_hash,
    near_duplicate_groups,
    read_voc,
    select,
    split_of,
)

VOC = """<annotation><size><width>64</width><height>48</height></size>
<object><name>with_mask</name><bndbox><xmin>4</xmin><ymin>5</ymin><xmax>20</xmax><ymax>25</ymax></bndbox></object>
<object><name>mask_weared_incorrect</name><bndbox><xmin>30</xmin><ymin>6</ymin><xmax>50</xmax><ymax>30</ymax></bndbox></object>
</annotation>"""


def _picture(seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8), (size, size))


def test_read_voc(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(VOC)
    assert read_voc(path) == [
        ("with_mask", (4.0, 5.0, 20.0, 25.0)),
        ("mask_weared_incorrect", (30.0, 6.0, 50.0, 30.0)),
    ]


def test_near_duplicates_share_a_group_and_different_pictures_do_not() -> None:
    original = _picture(1)
    recompressed = cv2.imdecode(
        cv2.imencode(".jpg", original, [cv2.IMWRITE_JPEG_QUALITY, 40])[1], 1
    )
    resized = cv2.resize(original, (96, 96))
    other = _picture(2)
    hashes = np.array(
        [
            difference_hash(np.asarray(im, np.uint8))
            for im in (original, recompressed, resized, other)
        ],
        np.uint64,
    )
    groups = near_duplicate_groups(hashes)
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] != groups[0]


def test_split_is_deterministic_and_roughly_proportional() -> None:
    keys = [f"picture-{i}" for i in range(4000)]
    first = [split_of(k, **CROWD_SPLIT) for k in keys]
    assert first == [split_of(k, **CROWD_SPLIT) for k in keys]
    share = np.bincount(first, minlength=3) / len(keys)
    assert share[SPLITS.index("test")] == pytest.approx(CROWD_SPLIT["test_fraction"], abs=0.03)
    assert share[SPLITS.index("val")] == pytest.approx(CROWD_SPLIT["val_fraction"], abs=0.03)


def _tiny_tree(root: Path) -> None:
    for label, seed in (("with_mask", 10), ("without_mask", 20)):
        folder = root / "crops" / "web" / label
        folder.mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(folder / f"{i}.jpg"), _picture(seed + i, 60))
    for part in ("train", "validation"):
        for label in ("with_mask", "without_mask"):
            (root / "crops" / "kaggle12k" / part / label).mkdir(parents=True)
    (root / "crowd" / "images").mkdir(parents=True)
    (root / "crowd" / "annotations").mkdir(parents=True)
    cv2.imwrite(str(root / "crowd" / "images" / "c0.jpg"), _picture(99, 64)[:48])
    (root / "crowd" / "annotations" / "c0.xml").write_text(VOC)


def test_build_keeps_all_faces_of_a_crowd_photo_in_one_split(tmp_path: Path) -> None:
    _tiny_tree(tmp_path)
    arrays = build(tmp_path, CropConfig(size_px=32))
    crowd = arrays["source"] == 2
    assert int(crowd.sum()) == 2
    assert arrays["label"][crowd].tolist() == [0, 1]  # worn wrongly counts as without_mask
    assert len(set(arrays["split"][crowd].tolist())) == 1
    images = decode_all(arrays)
    assert images.shape == (8, 32, 32, 3)
    subset = select(arrays, crowd)
    assert decode_all(subset).shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(decode_all(subset), images[crowd])


def test_build_splits_crowd_photos_whole_and_as_evaluation_reads_them(tmp_path: Path) -> None:
    """24 photos of 2 faces each: every photo's faces share one split (were crops split one by
    one, all 24 would agree with probability (0.6² + 0.1² + 0.3²)²⁴ ≈ 1e-8), and each photo's
    split is the one the pipeline evaluation assumes (`crowd_photo_split`)."""
    _tiny_tree(tmp_path)
    names = [f"p{i:02d}.jpg" for i in range(24)]
    for i, name in enumerate(names):
        cv2.imwrite(str(tmp_path / "crowd" / "images" / name), _picture(1000 + i, 64)[:48])
        (tmp_path / "crowd" / "annotations" / f"{Path(name).stem}.xml").write_text(VOC)
    arrays = build(tmp_path, CropConfig(size_px=32))
    crowd = arrays["source"] == SOURCES.index("crowd")
    photos: dict[int, set[str]] = {}
    for group, split in zip(arrays["group"][crowd], arrays["split"][crowd], strict=True):
        photos.setdefault(int(group), set()).add(SPLITS[int(split)])
    assert len(photos) == len(names) + 1  # and c0.jpg of the tiny tree
    assert all(len(splits) == 1 for splits in photos.values()), photos
    assert sorted(next(iter(s)) for s in photos.values()) == sorted(
        crowd_photo_split(name) for name in [*names, "c0.jpg"]
    )
    assert len({next(iter(s)) for s in photos.values()}) > 1


def test_crowd_faces_agree_with_the_packed_dataset(tmp_path: Path) -> None:
    _tiny_tree(tmp_path)
    for name in ("c1", "c2", "c3"):  # more photos, so the splits are not all alike by chance
        cv2.imwrite(str(tmp_path / "crowd" / "images" / f"{name}.jpg"), _picture(7, 64)[:48])
        (tmp_path / "crowd" / "annotations" / f"{name}.xml").write_text(VOC)
    arrays = build(tmp_path, CropConfig(size_px=32))
    crowd = arrays["source"] == SOURCES.index("crowd")
    crops, labels, splits = crowd_faces(tmp_path, CropConfig(size_px=32))
    assert crops.shape == (8, 32, 32, 3)
    assert labels.tolist() == arrays["label"][crowd].tolist()
    assert splits.tolist() == arrays["split"][crowd].tolist()
