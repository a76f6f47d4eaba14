"""Prometheus metrics of the detector workers (served by ServiceRuntime on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_MS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)

FRAMES = Counter("maskwatch_detector_frames_total", "Frames answered, by outcome.", ["outcome"])
"""outcome: processed | skipped | dead_lettered (rate() of it is frames/s)."""
DEAD_LETTERS = Counter(
    "maskwatch_detector_dead_letters_total", "Frames sent to the dead-letter topic.", ["reason"]
)
FACES_PER_FRAME = Histogram(
    "maskwatch_detector_faces_per_frame",
    "Faces detected per processed frame.",
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144),
)
DECODE_MS = Histogram("maskwatch_detector_decode_ms", "JPEG decode time.", buckets=_MS_BUCKETS)
DETECT_MS = Histogram("maskwatch_detector_detect_ms", "Face detection time.", buckets=_MS_BUCKETS)
CLASSIFY_MS = Histogram(
    "maskwatch_detector_classify_ms", "Classifier call time per batch.", buckets=_MS_BUCKETS
)
END_TO_END_MS = Histogram(
    "maskwatch_detector_end_to_end_ms",
    "Capture to result published, per processed frame.",
    buckets=_MS_BUCKETS,
)
BATCH_CROPS = Histogram(
    "maskwatch_detector_batch_crops",
    "Crops per classifier batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
CLASSIFIER_FAILURES = Counter(
    "maskwatch_detector_classifier_failures_total", "Failed classifier calls.", ["kind"]
)
"""kind: unavailable (retried with back-off) | error (counted towards dead-lettering)."""
CONSUMER_LAG = Gauge(
    "maskwatch_detector_consumer_lag", "Frames not yet read, per partition.", ["partition"]
)
IN_FLIGHT = Gauge("maskwatch_detector_in_flight_frames", "Frames taken but not committed.")
