"""Training data: class folders and PASCAL VOC crowd photos, split by source picture.

Every sample is a square classifier crop. Crowd faces are cut with `imaging.crop.crop_face`,
the function the detector uses. Splits are assigned per *group*, never per crop: all faces of
one crowd photo share a group, and pictures whose perceptual hashes are near each other
(the web set repeats pictures of the Kaggle set) are merged into one group, so a picture and
its near-duplicate never land on both sides of a split.

A dataset is stored as one `.npz` of JPEG-encoded crops (compact enough to ship to a GPU
machine) with per-sample label, source, split and group arrays.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from imaging.crop import CropConfig, crop_face, fit_to_square
from schemas.model_server import CLASSES

"""Class index order of the classifier's output."""
VOC_LABELS = {"with_mask": 0, "without_mask": 1, "mask_weared_incorrect": 1}
"""Masks worn wrongly count as no mask."""
SOURCES = ("web", "kaggle", "crowd")
SPLITS = ("train", "val", "test")
CROWD_SPLIT = {"val_fraction": 0.1, "test_fraction": 0.3}
"""Crowd photos are few and what cameras see: a larger test share keeps their F1 (and the
detector's evaluation on the same held-out photos) meaningful."""
SPLIT_HASH_SALT = "/work/shared/data/"
"""Salt of the split hash. A picture's split depends only on its path relative to the data
folder, so it is the same wherever the data lives; the prefix is where the data lay when the
shipped classifier was trained, kept so that model's held-out pictures stay held out."""
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class Sample:
    """One classifier crop (BGR, size×size) with where it came from."""

    crop: npt.NDArray[np.uint8]
    label: int
    source: str
    picture: str
    """Path of the source picture: the unit of splitting before near-duplicate merging."""


def read_voc(xml_path: Path) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(label name, xyxy) for every object of a PASCAL VOC annotation file."""
    root = ET.parse(xml_path).getroot()
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{xml_path}: object without bndbox")
        xyxy = tuple(float(box.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((name, (xyxy[0], xyxy[1], xyxy[2], xyxy[3])))
    return objects


def iter_class_folder(root: Path, source: str, size_px: int) -> Iterator[Sample]:
    """Samples from `root/<class>/*.jpg` folders (whole pictures fitted to a square)."""
    for label, name in enumerate(CLASSES):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            yield Sample(
                fit_to_square(np.asarray(image, np.uint8), size_px), label, source, str(path)
            )


def iter_voc_faces(root: Path, config: CropConfig) -> Iterator[Sample]:
    """Face crops from `root/images/*.jpg` with `root/annotations/*.xml` (VOC)."""
    for xml_path in sorted((root / "annotations").glob("*.xml")):
        image_path = root / "images" / (xml_path.stem + ".jpg")
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        for name, xyxy in read_voc(xml_path):
            if name not in VOC_LABELS:
                raise ValueError(f"{xml_path}: unknown class {name!r}")
            crop = crop_face(np.asarray(image, np.uint8), xyxy, config)
            yield Sample(crop, VOC_LABELS[name], "crowd", str(image_path))


def crowd_faces(
    shared_data: Path, config: CropConfig
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """Every crowd face as (BGR crops, labels, split indices), split per photo as in `build`,
    without decoding the other ~17,000 pictures (export calibrates and gates on these)."""
    faces = list(iter_voc_faces(shared_data / "crowd", config))
    crops = np.stack([f.crop for f in faces]) if faces else np.zeros((0, 0, 0, 3), np.uint8)
    labels = np.array([f.label for f in faces], dtype=np.int8)
    splits = np.array(
        [SPLITS.index(crowd_photo_split(Path(f.picture).name)) for f in faces], dtype=np.int8
    )
    return crops, labels, splits


def difference_hash(image: npt.NDArray[np.uint8]) -> int:
    """64-bit dHash: robust to re-encoding and resizing, used to find near-duplicates."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def near_duplicate_groups(hashes: npt.NDArray[np.uint64], max_distance: int = 4) -> list[int]:
    """Union-find over pairs of hashes within `max_distance` bits: one group id per hash."""
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    as_bytes = hashes.astype(">u8").view(np.uint8).reshape(-1, 8)
    bits = np.unpackbits(as_bytes, axis=1).astype(np.uint8)
    for start in range(0, len(bits), 512):
        block = bits[start : start + 512]
        distance = (block[:, None, :] != bits[None, :, :]).sum(axis=2)
        for i, j in zip(*np.nonzero(distance <= max_distance), strict=True):
            a, b = find(start + int(i)), find(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(hashes))]


def split_of(group_key: str, val_fraction: float = 0.1, test_fraction: float = 0.15) -> int:
    """Deterministic split index for a group (stable across runs and machines)."""
    bucket = int(hashlib.sha256(group_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < test_fraction:
        return SPLITS.index("test")
    if bucket < test_fraction + val_fraction:
        return SPLITS.index("val")
    return SPLITS.index("train")


def split_key(shared_data: Path, picture: str) -> str:
    """The split-hash key of a picture: its path relative to the data folder, salted."""
    return SPLIT_HASH_SALT + Path(picture).relative_to(shared_data).as_posix()


def crowd_photo_split(image_name: str) -> str:
    """'train' | 'val' | 'test' of a crowd photo (`crowd/images/<image_name>`), as training
    split it: the pipeline evaluation scores only photos the classifier never saw."""
    return SPLITS[split_of(SPLIT_HASH_SALT + f"crowd/images/{image_name}", **CROWD_SPLIT)]


def build(shared_data: Path, config: CropConfig) -> dict[str, npt.NDArray[np.generic]]:
    """All samples of `shared_data` (the `../shared/data` layout) with their splits."""
    samples: list[Sample] = []
    samples += iter_class_folder(shared_data / "crops" / "web", "web", config.size_px)
    for part in ("train", "validation"):
        samples += iter_class_folder(
            shared_data / "crops" / "kaggle12k" / part, "kaggle", config.size_px
        )
    samples += iter_voc_faces(shared_data / "crowd", config)

    pictures = sorted({s.picture for s in samples})
    picture_index = {p: i for i, p in enumerate(pictures)}
    first_crop: dict[str, npt.NDArray[np.uint8]] = {}
    for s in samples:
        first_crop.setdefault(s.picture, s.crop)
    hashes = np.array([difference_hash(first_crop[p]) for p in pictures], dtype=np.uint64)
    crowd = [p.startswith(str(shared_data / "crowd")) for p in pictures]
    # Crowd faces are grouped by their photo; only whole pictures are compared for duplicates.
    groups = near_duplicate_groups(hashes)
    group_of = [split_key(shared_data, pictures[g]) for g in groups]
    for i, is_crowd in enumerate(crowd):
        if is_crowd:
            group_of[i] = split_key(shared_data, pictures[i])

    encoded = [cv2.imencode(".jpg", s.crop, [cv2.IMWRITE_JPEG_QUALITY, 92])[1] for s in samples]
    offsets = np.cumsum([0] + [len(e) for e in encoded]).astype(np.int64)
    return {
        "jpeg": np.concatenate(encoded).astype(np.uint8).ravel(),
        "offsets": offsets,
        "label": np.array([s.label for s in samples], dtype=np.int8),
        "source": np.array([SOURCES.index(s.source) for s in samples], dtype=np.int8),
        "split": np.array(
            [
                split_of(group_of[picture_index[s.picture]], **CROWD_SPLIT)
                if s.source == "crowd"
                else split_of(group_of[picture_index[s.picture]])
                for s in samples
            ],
            dtype=np.int8,
        ),
        "group": np.array([groups[picture_index[s.picture]] for s in samples], dtype=np.int64),
        "size_px": np.array(config.size_px),
    }


def select(
    arrays: dict[str, npt.NDArray[np.generic]], keep: npt.NDArray[np.bool_]
) -> dict[str, npt.NDArray[np.generic]]:
    """A subset of a packed dataset (re-packing the JPEG bytes of the kept samples)."""
    offsets = arrays["offsets"]
    idx = np.flatnonzero(keep)
    chunks = [arrays["jpeg"][offsets[i] : offsets[i + 1]] for i in idx]
    new_offsets = np.cumsum([0] + [len(c) for c in chunks]).astype(np.int64)
    out = {k: v[idx] for k, v in arrays.items() if k not in ("jpeg", "offsets", "size_px")}
    out["jpeg"] = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    out["offsets"] = new_offsets
    out["size_px"] = arrays["size_px"]
    return out


def decode_all(arrays: dict[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.uint8]:
    """All crops of a packed dataset as an N×S×S×3 uint8 BGR array."""
    offsets = arrays["offsets"]
    jpeg = arrays["jpeg"]
    size = int(arrays["size_px"])
    out = np.empty((len(offsets) - 1, size, size, 3), dtype=np.uint8)
    for i in range(len(out)):
        image = cv2.imdecode(np.asarray(jpeg[offsets[i] : offsets[i + 1]]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"sample {i} of the packed dataset is not a decodable JPEG")
        out[i] = image
    return out


def ensure_packed(path: Path, shared_data: Path, config: CropConfig) -> Path:
    """`path`, after building the packed dataset there from `shared_data` if it is missing
    (building decodes ~17,800 pictures: worth doing once per machine)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **build(shared_data, config))  # type: ignore[arg-type]
    return path


def load(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    """Read a packed dataset written with `np.savez`."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
