"""The object frame, format version 1.

::

    offset  size  field
    0       4     magic b"SNPC"
    4       1     format version (1)
    5       1     kind: 0 keyframe, 1 delta
    6       2     flags, must be 0
    8       8     seq                      u64 LE
    16      8     base seq                 u64 LE (keyframe: its own seq)
    24      4     base content checksum    u32 LE (keyframe: 0)
    28      4     content checksum         u32 LE, CRC32C of the decoded snapshot
    32      8     decoded payload size     u64 LE
    40      8     compressed payload size  u64 LE
    48      N     zstd frame holding the payload
    48+N    4     frame checksum           u32 LE, CRC32C of bytes [0, 48+N)

The frame checksum lets ``verify`` find any changed byte without decoding;
the content checksum (see ``snapcloud.models.content_checksum``) covers what
the decoder rebuilt: header facts, labels, metadata, every timestamp and
every value bit. A delta names its base by seq and content checksum, so it
can never be applied to the wrong keyframe.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

from snapcloud.errors import ChecksumMismatch, TruncatedObject, UnknownFormat

MAGIC = b"SNPC"
VERSION = 1
KIND_KEYFRAME = 0
KIND_DELTA = 1

_HEADER = struct.Struct("<4sBBHQQIIQQ")
HEADER_SIZE = _HEADER.size  # 48
TRAILER_SIZE = 4


@dataclass(frozen=True)
class FrameHeader:
    """The fixed-size header of a snapshot object."""

    kind: int
    seq: int
    base_seq: int
    base_checksum: int
    content_checksum: int
    decoded_size: int
    payload_size: int

    @property
    def is_delta(self) -> bool:
        return self.kind == KIND_DELTA


def pack_frame(header: FrameHeader, payload: bytes) -> bytes:
    """Header + compressed payload + frame checksum."""
    head = _HEADER.pack(
        MAGIC,
        VERSION,
        header.kind,
        0,
        header.seq,
        header.base_seq,
        header.base_checksum,
        header.content_checksum,
        header.decoded_size,
        len(payload),
    )
    body = head + payload
    return body + struct.pack("<I", crc32c.crc32c(body))


def unpack_frame(data: bytes, *, key: str | None = None) -> tuple[FrameHeader, memoryview]:
    """Check magic, version, flags, sizes and frame checksum; return header and payload.

    Raises ``UnknownFormat``, ``TruncatedObject`` or ``ChecksumMismatch``.
    """
    if len(data) < HEADER_SIZE + TRAILER_SIZE:
        if data[:4] != MAGIC[: len(data[:4])]:
            raise UnknownFormat(f"not a snapcloud object (bad magic) at {key}", key=key)
        raise TruncatedObject(
            f"object of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header at {key}",
            key=key,
        )
    magic, version, kind, flags, seq, base_seq, base_crc, content_crc, decoded, payload_size = (
        _HEADER.unpack_from(data)
    )
    if magic != MAGIC:
        raise UnknownFormat(f"not a snapcloud object (bad magic) at {key}", key=key)
    if version != VERSION:
        raise UnknownFormat(
            f"unknown format version {version} (this build reads {VERSION}) at {key}",
            key=key,
            version=version,
        )
    if kind not in (KIND_KEYFRAME, KIND_DELTA) or flags != 0:
        raise UnknownFormat(f"unknown object kind {kind} or flags {flags:#x} at {key}", key=key)
    expected = HEADER_SIZE + payload_size + TRAILER_SIZE
    if len(data) != expected:
        raise TruncatedObject(
            f"object is {len(data)} bytes, header declares {expected} at {key}", key=key
        )
    body_end = HEADER_SIZE + payload_size
    (stored_crc,) = struct.unpack_from("<I", data, body_end)
    view = memoryview(data)
    if crc32c.crc32c(view[:body_end]) != stored_crc:
        raise ChecksumMismatch(f"frame checksum mismatch at {key}", key=key)
    header = FrameHeader(kind, seq, base_seq, base_crc, content_crc, decoded, payload_size)
    return header, view[HEADER_SIZE:body_end]
