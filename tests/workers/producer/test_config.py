"""cameras.yaml validation: good files load, bad ones fail with readable messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.producer.config import ConfigError, SourceKind, load_cameras, source_kind

REPO_ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return path


def test_example_file_loads() -> None:
    cameras = load_cameras(REPO_ROOT / "deploy/local/cameras.example.yaml")
    enabled = [c for c in cameras if c.enabled]
    assert len(enabled) >= 3
    # the demo cameras are video files that ship with the repository (built at install time
    # from deploy/local/samples), each a different one
    assert all(c.kind is SourceKind.FILE for c in enabled)
    assert all(c.location.startswith("var/samples/") for c in enabled)
    assert len({c.location for c in enabled}) == len(enabled)


def test_defaults_apply_and_cameras_override(tmp_path: Path) -> None:
    cameras = load_cameras(
        write(
            tmp_path,
            """
defaults: {fps: 1.5, jpeg_quality: 70, labels: {site: a}}
cameras:
  - {id: cam-1, source: "rtsp://h/s"}
  - {id: cam-2, source: "folder:imgs", fps: 3, slice: "10:20:2", labels: {site: b, zone: z}}
""",
        )
    )
    first, second = cameras
    assert (first.fps, first.jpeg_quality, first.labels) == (1.5, 70, {"site": "a"})
    assert (second.fps, second.labels) == (3, {"site": "b", "zone": "z"})
    assert second.python_slice() == slice(10, 20, 2)
    assert second.location == "imgs"
    assert first.python_slice() == slice(None, None, None)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("rtsp://10.0.0.1:554/s", SourceKind.RTSP),
        ("RTSPS://host/s", SourceKind.RTSP),  # scheme is case-insensitive
        ("http://host/mjpg", SourceKind.HTTP),
        ("https://host/v.mp4", SourceKind.HTTP),
        ("folder:../imgs", SourceKind.FOLDER),
        ("webcam:0", SourceKind.WEBCAM),
        ("file:/videos/a.mp4", SourceKind.FILE),
        ("videos/a.mp4", SourceKind.FILE),  # a bare path is a video file
    ],
)
def test_source_kind(source: str, kind: SourceKind) -> None:
    assert source_kind(source) is kind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # unknown key (typo) in a camera
        ("cameras: [{id: c, source: x.mp4, jpg_quality: 80}]", "jpg_quality"),
        # unknown key in defaults
        ("defaults: {fsp: 2}\ncameras: [{id: c, source: x.mp4}]", "unknown keys in defaults: fsp"),
        # camera id not usable as a Kafka key
        ("cameras: [{id: 'bad id', source: x.mp4}]", "cameras.0.id"),
        # duplicate ids
        ("cameras: [{id: c, source: a.mp4}, {id: c, source: b.mp4}]", "duplicate camera ids: c"),
        # out of bounds
        ("cameras: [{id: c, source: a.mp4, fps: 0}]", "cameras.0.fps"),
        ("cameras: [{id: c, source: a.mp4, max_resolution_wh: [10, 10]}]", "between 64 and 8192"),
        ("cameras: [{id: c, source: a.mp4, jpeg_quality: 101}]", "jpeg_quality"),
        # bad slice syntax, zero step
        ("cameras: [{id: c, source: 'folder:x', slice: 'a:b'}]", "start:stop"),
        ("cameras: [{id: c, source: 'folder:x', slice: '1:5:0'}]", "step must not be 0"),
        # folder options on a non-folder source
        ("cameras: [{id: c, source: a.mp4, slice: '1:2'}]", "folder: sources only"),
        ("cameras: [{id: c, source: 'webcam:x'}]", "webcam:N"),
        # empty camera list, wrong shapes, not YAML
        ("cameras: []", "cameras"),
        ("- just a list", "must be a mapping"),
        ("cameras: [{id: c, source: a.mp4}", "not valid YAML"),
    ],
)
def test_bad_files_fail_readably(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"cameras\.yaml") as error:
        load_cameras(write(tmp_path, text))
    assert message in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_cameras(tmp_path / "nope.yaml")
