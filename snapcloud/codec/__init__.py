"""Snapshot objects: keyframe and delta encoding, zstd, checksums (format v2; v1 is read).

``encode_keyframe`` / ``encode_delta`` turn a ``ProfileSnapshot`` into object
bytes; ``decode`` turns them back, bit for bit (``decode_object`` also says what the
object says of it: its stored checksum, its base, whether the decode was partial);
``read_header`` checks an object's frame without decompressing it. The retention
tiers' formats, one module each: ``encode_compressed`` / ``decode_compressed`` (a
keyframe group, lossless) and ``encode_archive`` / ``decode_archive`` (aggregates,
downsampled), both in the tier object container (``_tier_container``).
"""

from __future__ import annotations

from snapcloud.codec._archive import (
    META_RESOLUTION,
    META_TIER,
    archive_snapshot_names,
    decode_archive,
    encode_archive,
    resolution_of,
)
from snapcloud.codec._compressed import decode_compressed, encode_compressed
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
    "META_RESOLUTION",
    "META_TIER",
    "READABLE_VERSIONS",
    "VERSION",
    "Decoded",
    "FrameHeader",
    "archive_snapshot_names",
    "decode",
    "decode_archive",
    "decode_compressed",
    "decode_object",
    "encode_archive",
    "encode_compressed",
    "encode_delta",
    "encode_keyframe",
    "read_header",
    "resolution_of",
]
