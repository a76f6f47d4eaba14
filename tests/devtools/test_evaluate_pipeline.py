"""The pipeline evaluation's report and its held-out split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devtools.evaluate.pipeline import (
    Prediction,
    Truth,
    load_truth,
    recall_by_size,
    report,
    run_photos,
)
from serving.dataset import CROWD_SPLIT, SPLITS, crowd_photo_split, split_key, split_of
from tests.workers.detector.conftest import make_core


@pytest.mark.parametrize("data_root", ["/work/shared/data", "/elsewhere/shared/data"])
def test_crowd_split_is_the_training_rule_wherever_the_data_lives(data_root: str) -> None:
    name = "maksssksksss0.jpg"
    key = split_key(Path(data_root), f"{data_root}/crowd/images/{name}")
    assert crowd_photo_split(name) == SPLITS[split_of(key, **CROWD_SPLIT)]


def test_crowd_split_holds_out_about_the_configured_share() -> None:
    names = [f"maksssksksss{i}.jpg" for i in range(597)]
    share = np.mean([crowd_photo_split(n) == "test" for n in names])
    assert abs(share - CROWD_SPLIT["test_fraction"]) < 0.06


def test_report_per_class_ap_and_face_rates() -> None:
    truths = {
        "a.jpg": Truth(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float), np.array([0, 1])),
        "b.jpg": Truth(np.array([[0, 0, 10, 10]], float), np.array([1])),
    }
    predictions = {
        "a.jpg": [
            Prediction((0, 0, 10, 10), 0, 0.9, 0.8),  # right face, right class
            Prediction((20, 0, 30, 10), 0, 0.8, 0.5),  # right face, wrong class
        ],
        "b.jpg": [
            Prediction((0, 0, 10, 10), 1, 0.7, 0.6),  # right
            Prediction((50, 50, 60, 60), 1, 0.3, 0.2),  # a false face below the operating score
        ],
    }
    figures = report(truths, predictions, operating_score=0.5, classified=True)
    assert figures["ap_with_mask"] == pytest.approx(1.0)
    assert figures["ap_without_mask"] == pytest.approx(0.5)  # one of two found, ranked first
    assert figures["map"] == pytest.approx(0.75)
    assert figures["face_recall"] == pytest.approx(1.0)
    assert figures["face_precision"] == pytest.approx(1.0)  # the 0.3 face is below 0.5
    detector_only = report(truths, predictions, operating_score=0.0, classified=False)
    assert "map" not in detector_only and detector_only["face_precision"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("truth_boxes", "found_boxes", "expected"),
    [
        # one face per bin, all found
        ([[0, 0, 10, 10], [20, 0, 40, 20], [50, 0, 90, 40]], "all", (1.0, 1.0, 1.0)),
        # only the 40 px face found: the small ones are what is missed
        ([[0, 0, 10, 10], [20, 0, 40, 20], [50, 0, 90, 40]], [[50, 0, 90, 40]], (0.0, 0.0, 1.0)),
        # 8×32 px: geometric mean 16 → the 16–32 bin, not < 16
        ([[0, 0, 8, 32]], "all", (0.0, 1.0, 0.0)),
        # no faces at all: every bin empty, recall reported as 0 with a count of 0
        ([], [], (0.0, 0.0, 0.0)),
    ],
)
def test_recall_by_size(
    truth_boxes: list[list[float]],
    found_boxes: list[list[float]] | str,
    expected: tuple[float, float, float],
) -> None:
    xyxy = np.array(truth_boxes, float).reshape(-1, 4)
    truths = {"a.jpg": Truth(xyxy, np.zeros(len(xyxy), np.int64))}
    found = truth_boxes if found_boxes == "all" else found_boxes
    below = Prediction((100, 100, 110, 110), 0, 0.1, 0.1)  # under the operating score
    predictions = {
        "a.jpg": [Prediction(tuple(b), 0, 0.9, 0.9) for b in found] + [below]  # type: ignore[arg-type]
    }
    figures = recall_by_size(truths, predictions, operating_score=0.5)
    assert (
        figures["recall_lt16px"],
        figures["recall_16to32px"],
        figures["recall_ge32px"],
    ) == expected
    assert sum(figures[f"faces_{b}px"] for b in ("lt16", "16to32", "ge32")) == len(xyxy)


def test_load_truth_counts_incorrect_masks_as_without(shared_dir: Path) -> None:
    crowd = shared_dir / "data" / "crowd" / "annotations"
    labels = np.concatenate([load_truth(p).labels for p in sorted(crowd.glob("*.xml"))[:40]])
    assert set(labels.tolist()) <= {0, 1} and (labels == 1).any() and (labels == 0).any()


def test_photos_go_through_the_worker_core(shared_dir: Path) -> None:
    """Each photo reaches a result (the frame headers must carry its real size, or the
    worker's size check dead-letters it): the detector's boxes come back as faces."""
    photo = shared_dir / "data" / "crowd" / "images" / "maksssksksss1.jpg"
    core = make_core([(10, 10, 40, 40), (100, 20, 130, 60)], max_frame_bytes=1 << 20)
    results = run_photos(core, None, [photo])
    faces = results[photo.name].faces
    assert [face.xyxy for face in faces] == [(10, 10, 40, 40), (100, 20, 130, 60)]
