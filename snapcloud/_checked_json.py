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
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptError(f"{what} at {key} is not JSON: {exc}", key=key) from None
    if not isinstance(body, dict) or "crc32c" not in body:
        raise CorruptError(f"{what} at {key} has no checksum", key=key)
    if body.get("version") != version:
        raise UnknownFormat(f"{what} at {key}: unknown version {body.get('version')!r}", key=key)
    stored = body.pop("crc32c")
    if stored != crc32c.crc32c(canonical_json(body)):
        raise ChecksumMismatch(f"{what} checksum mismatch at {key}", key=key)
    try:
        return cls.model_validate(body)
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CorruptError(f"{what} at {key}: {where}: {first['msg']}", key=key) from None
