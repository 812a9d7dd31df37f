"""The object frame. Version 2 is written; version 1 (48-byte header) is still read.

Version 2 (little-endian; a *varint* is an unsigned LEB128 of at most 10 bytes,
minimally encoded)::

    size    field
    4       magic b"SNPC"
    1       format version (2)
    1       kind: 0 keyframe, 1 delta
    1       zstd dictionary: 0 none, 1 the built-in dictionary 1 (see ``_zstd``)
    varint  seq
    varint  delta only: seq - base seq, zigzagged
    4       delta only: base content checksum      u32
    4       content checksum                       u32, CRC32C of the decoded snapshot
    varint  decoded payload size
    varint  compressed payload size N
    N       payload: one magicless zstd frame, without content size, checksum or dictionary id
    4       frame checksum                         u32, CRC32C of every byte before it

Version 1::

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
    48      N     zstd frame holding the payload (standard, with content size, no dictionary)
    48+N    4     frame checksum           u32 LE, CRC32C of bytes [0, 48+N)

Version 2 exists for small objects: a day of a 5-minute series is 288 samples
in about 450 bytes, and version 1 spent 52 of them on the frame and about 12
on zstd's own framing; version 2 spends 20-28 (see docs/architecture.md, D15).

The frame checksum lets ``verify`` find any changed byte without decoding;
the content checksum (see ``snapcloud.models.content_checksum``) covers what
the decoder rebuilt: header facts, labels, metadata, every timestamp and
every value bit. A delta names its base by seq and content checksum, so it
can never be applied to the wrong keyframe. The compressed size is declared
so that a cut-off object reads as truncated, not merely as corrupt.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

from snapcloud.errors import ChecksumMismatch, CorruptError, TruncatedObject, UnknownFormat

MAGIC = b"SNPC"
VERSION = 2
READABLE_VERSIONS = (1, 2)
KIND_KEYFRAME = 0
KIND_DELTA = 1
#: Dictionary numbers a version-2 frame may name (0: none).
DICTIONARIES = (0, 1)

_HEADER_V1 = struct.Struct("<4sBBHQQIIQQ")
HEADER_SIZE_V1 = _HEADER_V1.size  # 48
#: The fixed part every version starts with: magic, version.
PREFIX_SIZE = 5
TRAILER_SIZE = 4
_U32 = struct.Struct("<I")
_MAX_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class FrameHeader:
    """The header of a snapshot object."""

    kind: int
    seq: int
    base_seq: int
    base_checksum: int
    content_checksum: int
    decoded_size: int
    payload_size: int
    version: int = VERSION
    dictionary: int = 0

    @property
    def is_delta(self) -> bool:
        return self.kind == KIND_DELTA


def _varint(value: int) -> bytes:
    if not 0 <= value <= _MAX_U64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> int:
    return (value << 1) if value >= 0 else ((-value) << 1) - 1


def _unzigzag(value: int) -> int:
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


class _Cursor:
    """Reads header fields in order; running off the end is a truncation."""

    def __init__(self, data: bytes, offset: int, key: str | None) -> None:
        self.data, self.offset, self.key = data, offset, key

    def byte(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        (value,) = _U32.unpack(self.take(4))
        return int(value)

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise TruncatedObject(
                f"object of {len(self.data)} bytes ends inside its header at {self.key}",
                key=self.key,
            )
        out = self.data[self.offset : end]
        self.offset = end
        return bytes(out)

    def varint(self) -> int:
        value = shift = 0
        for i in range(10):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                if (b == 0 and i > 0) or value > _MAX_U64:
                    break  # not minimal, or over 64 bits
                return value
            shift += 7
        raise CorruptError(f"malformed varint in the header at {self.key}", key=self.key)


def pack_frame(header: FrameHeader, payload: bytes) -> bytes:
    """Header + compressed payload + frame checksum, in format version 2."""
    delta = header.kind == KIND_DELTA
    parts = [
        MAGIC,
        bytes((VERSION, header.kind, header.dictionary)),
        _varint(header.seq),
        _varint(_zigzag(header.seq - header.base_seq)) if delta else b"",
        _U32.pack(header.base_checksum) if delta else b"",
        _U32.pack(header.content_checksum),
        _varint(header.decoded_size),
        _varint(len(payload)),
        payload,
    ]
    body = b"".join(parts)
    return body + _U32.pack(crc32c.crc32c(body))


def unpack_frame(data: bytes, *, key: str | None = None) -> tuple[FrameHeader, memoryview]:
    """Check magic, version, fields, sizes and frame checksum; return header and payload.

    Raises ``UnknownFormat``, ``TruncatedObject``, ``ChecksumMismatch`` or
    ``CorruptError`` (a malformed header field).
    """
    if data[:4] != MAGIC[: len(data[:4])]:
        raise UnknownFormat(f"not a snapcloud object (bad magic) at {key}", key=key)
    if len(data) < PREFIX_SIZE + TRAILER_SIZE:
        raise TruncatedObject(
            f"object of {len(data)} bytes is shorter than any snapcloud frame at {key}", key=key
        )
    version = data[4]
    if version not in READABLE_VERSIONS:
        raise UnknownFormat(
            f"unknown format version {version} (this build reads {READABLE_VERSIONS}) at {key}",
            key=key,
            version=version,
        )
    header, start = _header_v1(data, key) if version == 1 else _header_v2(data, key)
    body_end = start + header.payload_size
    if len(data) != body_end + TRAILER_SIZE:
        raise TruncatedObject(
            f"object is {len(data)} bytes, header declares {body_end + TRAILER_SIZE} at {key}",
            key=key,
        )
    (stored_crc,) = _U32.unpack_from(data, body_end)
    view = memoryview(data)
    if crc32c.crc32c(view[:body_end]) != stored_crc:
        raise ChecksumMismatch(f"frame checksum mismatch at {key}", key=key)
    return header, view[start:body_end]


def _check_kind(kind: int, flags: int, key: str | None) -> None:
    if kind not in (KIND_KEYFRAME, KIND_DELTA) or flags != 0:
        raise UnknownFormat(f"unknown object kind {kind} or flags {flags:#x} at {key}", key=key)


def _header_v1(data: bytes, key: str | None) -> tuple[FrameHeader, int]:
    if len(data) < HEADER_SIZE_V1 + TRAILER_SIZE:
        raise TruncatedObject(
            f"object of {len(data)} bytes is shorter than the {HEADER_SIZE_V1}-byte "
            f"version 1 header at {key}",
            key=key,
        )
    _, _, kind, flags, seq, base_seq, base_crc, content_crc, decoded, payload_size = (
        _HEADER_V1.unpack_from(data)
    )
    _check_kind(kind, flags, key)
    header = FrameHeader(
        kind, seq, base_seq, base_crc, content_crc, decoded, payload_size, version=1
    )
    return header, HEADER_SIZE_V1


def _header_v2(data: bytes, key: str | None) -> tuple[FrameHeader, int]:
    cur = _Cursor(data, PREFIX_SIZE, key)
    kind, dictionary = cur.byte(), cur.byte()
    _check_kind(kind, 0, key)
    if dictionary not in DICTIONARIES:
        raise UnknownFormat(f"unknown zstd dictionary {dictionary} at {key}", key=key)
    seq = cur.varint()
    base_seq, base_crc = seq, 0
    if kind == KIND_DELTA:
        base_seq = seq - _unzigzag(cur.varint())
        if not 0 <= base_seq <= _MAX_U64:
            raise CorruptError(f"base seq out of range at {key}", key=key)
        base_crc = cur.u32()
    content_crc = cur.u32()
    decoded, payload_size = cur.varint(), cur.varint()
    header = FrameHeader(
        kind, seq, base_seq, base_crc, content_crc, decoded, payload_size, 2, dictionary
    )
    return header, cur.offset
