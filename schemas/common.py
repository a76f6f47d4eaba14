"""Types and rules shared by all message contracts.

Compatibility rule (every message carries an integer `schema_version`):
- Adding an optional field with a default is compatible: the version stays, and readers
  ignore fields they do not know (parsing uses `extra="ignore"`), so old readers accept new
  writers and new readers accept old writers.
- Two narrower changes are compatible too, by decision (reviewed with the contract snapshots in
  tests/fixtures/contracts): a new dead-letter reason code (no product stage reads dead
  letters; their readers — dashboards, the consumer guide — treat `reason` as text), and a
  bound that only refuses values no downstream store can hold (`seq` ≤ 2^63−1: Kafka clients
  and Redis keep int64, so no such frame was ever processed).
- Removing or renaming a field, changing a type, unit or meaning is breaking: the version is
  incremented, and readers accept exactly the versions listed in their `SUPPORTED_VERSIONS`.
  Anything else goes to the dead-letter topic with reason `unsupported_schema_version`;
  it is never guessed at.
- A deployment upgrades readers (detector, aggregator) to accept the new version before
  writers start producing it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

CameraId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Camera id: 1-64 letters, digits, '.', '_' or '-'; the Kafka key.",
    ),
]
SEQ_MAX = 2**63 - 1
"""Largest sequence number: an int64 (Kafka, Redis and every reader can hold it exactly)."""
Sequence = Annotated[
    int, Field(ge=0, le=SEQ_MAX, description="Per-camera frame sequence number (0 ... 2^63-1).")
]
LabelKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
LabelValue = Annotated[str, Field(min_length=1, max_length=64)]
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(max_length=16, description="A camera's free labels such as site and zone (max 16)."),
]
UtcTime = Annotated[AwareDatetime, Field(description="A timezone-aware time (UTC on output).")]


class Contract(BaseModel):
    """Base of every message: frozen, unknown fields ignored on read (see the module doc)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class SchemaError(ValueError):
    """A message that does not fit its contract; `code` becomes the dead-letter reason."""

    def __init__(self, code: DeadLetterReason, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DeadLetterReason(StrEnum):
    """Why a message could not be processed (stable codes for dashboards and alerts)."""

    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    UNKNOWN_ENCODING = "unknown_encoding"
    CORRUPT_IMAGE = "corrupt_image"
    OVERSIZED_FRAME = "oversized_frame"
    UNKNOWN_CAMERA = "unknown_camera"
    INVALID_MESSAGE = "invalid_message"
    PROCESSING_FAILED = "processing_failed"
    # Added by issue 12 (compatible: new codes; readers of dead letters treat codes as text).
    IMAGE_TOO_LARGE = "image_too_large"
    """The JPEG header declares more pixels than the detector's limit (a decompression bomb)."""
    SIZE_MISMATCH = "size_mismatch"
    """The JPEG header's size disagrees with mw-width / mw-height."""
    ENCODING_MISMATCH = "encoding_mismatch"
    """The payload's magic bytes are not those of the encoding its header names."""
    OUT_OF_RANGE = "out_of_range"
    """A value outside its stated range: seq, or captured_at later than now + clock skew."""
    TOO_MANY_FACES = "too_many_faces"
    """A result with more faces than any frame can hold (max faces per frame)."""
    OVERSIZED_MESSAGE = "oversized_message"
    """A record larger than its stage accepts (after decompression), or JSON nested too deep."""
    CORRUPT_RECORD = "corrupt_record"
    """The Kafka client could not decode the record itself (e.g. a non-UTF-8 header key)."""
    CLASSIFIER_UNAVAILABLE = "classifier_unavailable"
    """The model server kept timing out or refusing the frame's crops within the retry budget."""


M = TypeVar("M", bound=Contract)


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def encode(message: Contract) -> bytes:
    """A contract as compact JSON bytes (Kafka values of results, dead letters, alerts)."""
    return message.model_dump_json().encode()


def decode(model: type[M], payload: bytes, supported_versions: frozenset[int]) -> M:
    """Parse JSON bytes into `model`, checking the schema version first.

    Raises SchemaError with `unsupported_schema_version` for a version this reader does not
    support, `oversized_message` for JSON nested deeper than the parser's bound (about 200
    levels: the parser stops there, in bounded memory) and `invalid_message` for anything
    else that does not fit the contract. Callers bound the payload's size before this.
    """
    try:
        raw = model.__pydantic_validator__.validate_json(payload, allow_partial=False)
    except ValidationError as error:
        if any("recursion limit" in e["msg"] for e in error.errors()[:1]):
            raise SchemaError(
                DeadLetterReason.OVERSIZED_MESSAGE,
                f"{model.__name__}: JSON nested deeper than the parser's limit",
            ) from error
        version = _peek_version(payload)
        if version is not None and version not in supported_versions:
            raise SchemaError(
                DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
                f"schema_version {version} not in supported {sorted(supported_versions)}",
            ) from error
        raise SchemaError(
            DeadLetterReason.INVALID_MESSAGE, f"{model.__name__}: {_summary(error)}"
        ) from error
    return raw  # type: ignore[no-any-return]


def _peek_version(payload: bytes) -> int | None:
    import json

    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    version = value.get("schema_version") if isinstance(value, dict) else None
    return version if isinstance(version, int) else None


def _summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in error.errors()[:5]
    )
