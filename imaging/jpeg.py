"""What an encoded image says about itself before it is decoded: format and pixel size.

Why: decoding allocates width × height × 3 bytes whatever the file's size, so a 629-byte
JPEG that declares 30000×30000 pixels costs ~2.7 GB before a single check could run. These
functions read only the magic bytes and the JPEG frame header (SOF), in O(header) time and
memory, so the caller can refuse a bomb, a mislabelled PNG or a size that disagrees with
the frame's headers before calling the decoder. Pure: bytes in, facts out.
"""

from __future__ import annotations

MAGIC: dict[str, tuple[bytes, ...]] = {
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "gif": (b"GIF87a", b"GIF89a"),
    "tiff": (b"II*\x00", b"MM\x00*"),
    "bmp": (b"BM",),
    "webp": (b"RIFF",),
}
"""Leading bytes of the formats a camera or an attacker may send (webp also has b"WEBP" at 8)."""

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""Start-of-frame markers (baseline, progressive, lossless, …); C4/C8/CC are DHT/JPG/DAC."""
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
"""Markers without a length field (TEM, RSTn)."""
_SOS, _EOI = 0xDA, 0xD9


def sniff_format(payload: bytes) -> str | None:
    """The format whose magic bytes start `payload` (a key of MAGIC), or None if unknown."""
    for name, prefixes in MAGIC.items():
        if payload.startswith(prefixes):
            return name
    return None


def jpeg_size_px(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF segment of a JPEG, or None if the markers before it
    are malformed or no SOF comes before the scan data (then the JPEG cannot be decoded).

    Walks the marker segments from the start (each 2-byte marker, then a 2-byte big-endian
    length that includes itself); reads at most the header bytes, never the scan.
    """
    if not payload.startswith(MAGIC["jpeg"]):
        return None
    pos = 2
    end = len(payload)
    while pos + 4 <= end:
        if payload[pos] != 0xFF:
            return None
        marker = payload[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (_SOS, _EOI):
            return None
        length = int.from_bytes(payload[pos + 2 : pos + 4], "big")
        if length < 2:
            return None
        if marker in _SOF_MARKERS:
            if length < 7 or pos + 9 > end:
                return None
            height = int.from_bytes(payload[pos + 5 : pos + 7], "big")
            width = int.from_bytes(payload[pos + 7 : pos + 9], "big")
            return width, height
        pos += 2 + length
    return None
