"""Snapshot objects: keyframe and delta encoding, zstd, checksums (format v2; v1 is read).

``encode_keyframe`` / ``encode_delta`` turn a ``ProfileSnapshot`` into object
bytes; ``decode`` turns them back, bit for bit; ``read_header`` checks an
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
    decode,
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
    "FrameHeader",
    "decode",
    "encode_delta",
    "encode_keyframe",
    "read_header",
]
