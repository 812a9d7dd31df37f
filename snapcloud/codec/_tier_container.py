"""The tier object container: a checked frame around a table of contents and snapshot frames.

The compressed (``_compressed``) and archive (``_archive``) formats are both this
container; they differ in the table of contents and in what the frames hold.

Tier object, format 1::

    offset  size  field
    0       4     magic b"SNPT"
    4       1     format version (1)
    5       1     tier: 1 compressed, 2 archive
    6       2     flags, must be 0
    8       4     size T of the table of contents (a zstd frame of canonical JSON)
    12      4     frame count n
    16      8n    frame sizes, u64 LE
    16+8n   T     table of contents
    ...           n frames, each a snapshot object (``snapcloud.codec``, format 1 or 2)
    end-4   4     CRC32C of every byte before it
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from typing import Any

import crc32c
import pydantic_core
import zstandard

from snapcloud.errors import (
    ChecksumMismatch,
    CorruptError,
    OversizedObject,
    TruncatedObject,
    UnknownFormat,
)
from snapcloud.models import canonical_json

__all__ = ["pack_tier_object", "unpack_tier_object"]

_MAGIC = b"SNPT"
_VERSION = 1
_TIER_CODE = {"compressed": 1, "archive": 2}
_HEAD = struct.Struct("<4sBBHII")
_MAX_FRAMES = 1 << 16
_local = threading.local()


def _zstd(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("cctx", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def pack_tier_object(tier: str, toc: dict[str, Any], frames: Sequence[bytes], level: int) -> bytes:
    """A tier object of ``tier`` holding ``toc`` and ``frames`` (each a snapshot object)."""
    toc_z = _zstd(min(level, 9)).compress(canonical_json(toc))  # small: 19 buys nothing
    head = _HEAD.pack(_MAGIC, _VERSION, _TIER_CODE[tier], 0, len(toc_z), len(frames))
    sizes = struct.pack(f"<{len(frames)}Q", *(len(f) for f in frames))
    body = b"".join([head, sizes, toc_z, *frames])
    return body + struct.pack("<I", crc32c.crc32c(body))


def unpack_tier_object(
    data: bytes, tier: str, *, key: str | None, max_decoded: int
) -> tuple[dict[str, Any], list[bytes]]:
    """Check a tier object's frame and return its table of contents and its frames."""
    if len(data) < _HEAD.size + 4:
        raise TruncatedObject(f"tier object of {len(data)} bytes is too short at {key}", key=key)
    magic, version, code, flags, toc_size, count = _HEAD.unpack_from(data)
    if magic != _MAGIC:
        raise UnknownFormat(f"not a snapcloud tier object (bad magic) at {key}", key=key)
    if version != _VERSION or flags != 0 or code != _TIER_CODE[tier] or count > _MAX_FRAMES:
        raise UnknownFormat(
            f"tier object version {version}, tier {code}, flags {flags:#x} not readable at {key}",
            key=key,
        )
    offset = _HEAD.size + 8 * count
    if len(data) < offset + 4:
        raise TruncatedObject(f"tier object shorter than its header at {key}", key=key)
    sizes = struct.unpack_from(f"<{count}Q", data, _HEAD.size)
    if offset + toc_size + sum(sizes) + 4 != len(data):
        raise TruncatedObject(f"tier object is not the size its header declares at {key}", key=key)
    (stored,) = struct.unpack_from("<I", data, len(data) - 4)
    view = memoryview(data)
    if crc32c.crc32c(view[:-4]) != stored:
        raise ChecksumMismatch(f"tier object checksum mismatch at {key}", key=key)
    toc_z = view[offset : offset + toc_size]
    try:
        declared = zstandard.frame_content_size(toc_z)
        if declared < 0 or declared > max_decoded:
            raise OversizedObject(f"tier object table of contents too large at {key}", key=key)
        toc = pydantic_core.from_json(  # half the time of json.loads, the same values
            zstandard.ZstdDecompressor().decompress(toc_z, max_output_size=declared),
            allow_inf_nan=False,
        )
    except (zstandard.ZstdError, ValueError, RecursionError) as exc:
        # ValueError: malformed JSON (bad UTF-8, NaN, nesting too deep included).
        raise CorruptError(
            f"tier object table of contents unreadable at {key}: {exc!r:.200}", key=key
        ) from None
    if not isinstance(toc, dict) or toc.get("tier") != tier:
        raise CorruptError(f"tier object table of contents malformed at {key}", key=key)
    frames = []
    pos = offset + toc_size
    for size in sizes:
        frames.append(data[pos : pos + size])
        pos += size
    return toc, frames
