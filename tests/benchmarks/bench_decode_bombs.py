"""Peak memory of the detector's decode path against decompression bombs, guarded vs not.

    .venv/bin/python -m tests.benchmarks.bench_decode_bombs

Each case is a payload a camera or an attacker could send with matching `mw-width`/
`mw-height` headers. Each variant runs in a fresh Python process that reads the payload
from a file and reports its peak RSS (`VmHWM`) before and after one call, so the delta
is what that one call allocated at its peak:

- guarded: `Core.prepare` of the detector with the default `max_image_px` (16.6 MP) — the
  SOF and size checks of imaging/jpeg.py, then, only if they pass, the decode (the core is
  given a detector that finds no face, so what is measured is the decode path alone);
- unguarded: `cv2.imdecode` of the same bytes, what the detector did before the guard.

The stated bound: a frame that passes the guard decodes to at most max_image_px × 3 bytes
(47.5 MiB at the default) and the decode peaks at twice that (measured: 96.6 MiB at the
limit, baseline or progressive); a refused one allocates nothing of its declared size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import cv2
import numpy as np

from workers.detector.core import CoreConfig

MAX_IMAGE_PX = CoreConfig.max_image_px
CHILD = """
import json, sys
from datetime import UTC, datetime
import cv2, numpy as np
from imaging.crop import CropConfig
from imaging.detections import Detections
from schemas.frame import FrameMeta, frame_headers
from workers.detector.core import Core, CoreConfig, FrameMessage

# Peak RSS of this process. VmHWM is per address space, so it starts afresh at exec;
# ru_maxrss would start at the peak of the parent that vforked this process.
def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

class NoFaces:
    name, version, licence = "no-faces", "1", "benchmark"
    def detect(self, image):
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

path, variant, width, height = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
payload = open(path, "rb").read()
now = datetime.now(UTC)
meta = FrameMeta(camera_id="cam", seq=1, captured_at=now, width=width, height=height)
message = FrameMessage("frames", 0, 0, payload, frame_headers(meta))
core = Core(NoFaces(), CoreConfig(worker_id="b", classifier_name="c", crop=CropConfig(),
                                  max_age_s=60, max_frame_bytes=4 << 20))
before = hwm_kib()
if variant == "guarded":
    outcome = core.prepare(message, now)
    what = getattr(outcome, "reason", None)
    what = what.value if what is not None else "decoded %dx%d" % outcome.frame_wh
else:
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    what = "decoded %dx%d" % (image.shape[1], image.shape[0])
after = hwm_kib()
print(json.dumps({"peak_delta_mib": (after - before) / 1024, "outcome": what}))
"""


def uniform(width: int, height: int, progressive: bool = False) -> bytes:
    """A genuine JPEG of one grey: small on the wire, width × height × 3 bytes decoded."""
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    ok, data = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8), params)
    assert ok
    return bytes(data)


def forged(width: int, height: int) -> bytes:
    """A 64x48 JPEG whose SOF0 declares width x height (decodes to grey, with warnings)."""
    data = uniform(64, 48)
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[sof + 9 :]


def cases() -> list[tuple[str, bytes, int, int]]:
    at_limit = (3840, 4320)  # 16,588,800 px = max_image_px
    return [
        ("forged SOF 16000x16000", forged(16000, 16000), 16000, 16000),
        ("uniform 12000x12000 (genuine)", uniform(12000, 12000), 12000, 12000),
        ("uniform 12000x12000 progressive", uniform(12000, 12000, True), 12000, 12000),
        ("uniform 3840x4320 (at the limit)", uniform(*at_limit), *at_limit),
        ("uniform 3840x4320 progressive", uniform(*at_limit, True), *at_limit),
    ]


def run(path: Path, variant: str, width: int, height: int) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), variant, str(width), str(height)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@click.command()
def main() -> None:
    bound_mib = MAX_IMAGE_PX * 3 / 2**20
    click.echo(
        f"max_image_px {MAX_IMAGE_PX:,} → decoded image at most {bound_mib:.1f} MiB; "
        f"cv2.imdecode peaks at about twice its output, so the decode path's bound is "
        f"{2 * bound_mib:.0f} MiB"
    )
    click.echo(
        f"{'case':<34} {'file kB':>8} {'decoded MiB':>11}  {'guarded: outcome':<24} "
        f"{'peak +MiB':>9}  {'unguarded peak +MiB':>19}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for name, payload, width, height in cases():
            path = Path(folder) / "payload.jpg"
            path.write_bytes(payload)
            guarded = run(path, "guarded", width, height)
            unguarded = run(path, "unguarded", width, height)
            click.echo(
                f"{name:<34} {len(payload) / 1000:>8.1f} {width * height * 3 / 2**20:>11.0f}  "
                f"{guarded['outcome']!s:<24} {guarded['peak_delta_mib']:>9.1f}  "
                f"{unguarded['peak_delta_mib']:>19.1f}"
            )


if __name__ == "__main__":
    main()
