"""Prometheus gauges of the fleet, computed at scrape time from the maintained overview.

Cardinality is bounded and documented: per camera, one series per window for compliance and
faces plus its silence (at most `max_cameras` cameras, in id order; the rest are counted in
`maskwatch_cameras_unexported`); per label, only the names in `labels` (e.g. site, zone) and
at most `max_values` values each, the rest summed under value `_other`. With the defaults
(2,000 cameras, 2 labels × 100 values, 3 windows) that is at most ~14,000 series.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workers.api.models import CameraSummary, label_groups
from workers.api.overview import LiveOverview

OTHER = "_other"


def _capped(label: str, cams: list[CameraSummary], max_values: int) -> list[CameraSummary]:
    """Cameras with values beyond the first `max_values` (by size) relabelled `_other`."""
    sizes: dict[str, int] = {}
    for cam in cams:
        if label in cam.labels:
            sizes[cam.labels[label]] = sizes.get(cam.labels[label], 0) + 1
    kept = set(sorted(sizes, key=lambda v: (-sizes[v], v))[:max_values])
    return [
        cam
        if label not in cam.labels or cam.labels[label] in kept
        else cam.model_copy(update={"labels": {**cam.labels, label: OTHER}})
        for cam in cams
    ]


class FleetCollector(Collector):
    """See the module doc."""

    def __init__(
        self, fleet: LiveOverview, labels: list[str], max_cameras: int, max_values: int
    ) -> None:
        self.fleet, self.labels = fleet, labels
        self.max_cameras, self.max_values = max_cameras, max_values

    def collect(self) -> Iterator[GaugeMetricFamily]:
        _, cams = self.fleet.page({}, 0, max(1, len(self.fleet.entries)))
        exported = cams[: self.max_cameras]
        compliance = GaugeMetricFamily(
            "maskwatch_camera_compliance_ratio",
            "Share of faces masked per camera and window (absent: no faces).",
            labels=["camera", "window"],
        )
        faces = GaugeMetricFamily(
            "maskwatch_camera_faces", "Faces per camera and window.", labels=["camera", "window"]
        )
        silent = GaugeMetricFamily(
            "maskwatch_camera_silent_seconds",
            "Seconds since the camera's newest frame.",
            labels=["camera"],
        )
        for cam in exported:
            for w in cam.windows:
                faces.add_metric([cam.camera_id, w.window], w.faces)
                if w.compliance is not None:
                    compliance.add_metric([cam.camera_id, w.window], w.compliance)
            if cam.silent_for_s is not None:  # a camera never seen has no silence yet
                silent.add_metric([cam.camera_id], cam.silent_for_s)
        yield compliance
        yield faces
        yield silent
        yield GaugeMetricFamily(
            "maskwatch_cameras_unexported",
            "Cameras left out of the per-camera series (over the cap).",
            value=len(cams) - len(exported),
        )
        per_label = GaugeMetricFamily(
            "maskwatch_label_compliance_ratio",
            "Share of faces masked over the cameras with one label value, per window.",
            labels=["label", "value", "window"],
        )
        label_faces = GaugeMetricFamily(
            "maskwatch_label_faces",
            "Faces over the cameras with one label value, per window.",
            labels=["label", "value", "window"],
        )
        for label in self.labels:
            for group in label_groups(label, _capped(label, cams, self.max_values)):
                for w in group.windows:
                    label_faces.add_metric([label, group.value, w.window], w.faces)
                    if w.compliance is not None:
                        per_label.add_metric([label, group.value, w.window], w.compliance)
        yield per_label
        yield label_faces
