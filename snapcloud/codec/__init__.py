"""Snapshot objects: keyframe and delta encoding, zstd, checksums (format v2; v1 is read).

``encode_keyframe`` / ``encode_delta`` turn a ``ProfileSnapshot`` into object
bytes; ``decode`` turns them back, bit for bit (``decode_object`` also says what the
object says of it: its stored checksum, its base, whether the decode was partial);
``read_header`` checks an
object's frame without decompressing it.
"""

from __future__ import annotations

from snapcloud.codec._format import (
    KIND_DELTA,
    KIND_KEYFRAME,
    READABLE_VERSIONS,
    VERSION,
    FrameHeader,
)
from snapcloud.codec._snapshot import (
    DEFAULT_MAX_DECODED,
    Decoded,
    decode,
    decode_object,
    encode_delta,
    encode_keyframe,
    read_header,
)

__all__ = [
    "DEFAULT_MAX_DECODED",
    "KIND_DELTA",
    "KIND_KEYFRAME",
    "READABLE_VERSIONS",
    "VERSION",
    "Decoded",
    "FrameHeader",
    "decode",
    "decode_object",
    "encode_delta",
    "encode_keyframe",
    "read_header",
]
