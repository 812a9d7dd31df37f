"""Small JSON objects that carry their own CRC32C (index segments, catalog, marks).

The ``crc32c`` field covers the canonical JSON (``snapcloud.models.canonical_json``)
of every other field, so any changed byte is found on read.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import crc32c
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from snapcloud.errors import ChecksumMismatch, CorruptError, UnknownFormat
from snapcloud.models import canonical_json

M = TypeVar("M", bound=BaseModel)


def dump_checked(model: BaseModel) -> bytes:
    """The model as compact JSON with a ``crc32c`` field over everything else."""
    body = model.model_dump(mode="json")
    body["crc32c"] = crc32c.crc32c(canonical_json(body))
    return json.dumps(body, separators=(",", ":")).encode()


def load_checked(
    cls: type[M], data: bytes, *, what: str, version: Any, key: str | None = None
) -> M:
    """Parse, check version and checksum, validate. Raises ``CorruptError`` subclasses."""
    try:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and over-long integers;
        # RecursionError a hostile nesting depth.
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CorruptError(f"{what} at {key} is not JSON: {str(exc)[:200]}", key=key) from None
    if not isinstance(body, dict) or "crc32c" not in body:
        raise CorruptError(f"{what} at {key} has no checksum", key=key)
    if body.get("version") != version:
        shown = repr(body.get("version"))[:40]
        raise UnknownFormat(f"{what} at {key}: unknown version {shown}", key=key)
    # The checksum covers the parsed content; a changed byte that parses the same
    # (``\u00e9`` -> ``\u00E9``, ``1`` -> ``1.0e0``, a space) is found by the written
    # form: compact separators, ASCII escapes, keys in the order they were written
    # (``json.loads`` keeps it, so writers that sorted their keys still read back).
    try:
        written = json.dumps(body, separators=(",", ":")).encode() == bytes(data)
    except (ValueError, RecursionError):
        written = False
    stored = body.pop("crc32c")
    try:
        expected = crc32c.crc32c(canonical_json(body))
    except (ValueError, RecursionError):  # NaN or infinity: never in what we write
        raise CorruptError(f"{what} at {key} holds a non-finite number", key=key) from None
    if stored != expected:
        raise ChecksumMismatch(f"{what} checksum mismatch at {key}", key=key)
    if not written:
        raise ChecksumMismatch(f"{what} at {key} is not in its written form", key=key)
    try:
        return cls.model_validate(body)
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CorruptError(f"{what} at {key}: {where}: {first['msg']}", key=key) from None
