"""The ``ObjectStore`` protocol every backend implements, and what it returns.

A backend stores opaque bytes under ``/``-separated keys. It knows nothing of
snapshots. Semantics every backend honours (checked by the conformance suite in
``tests/backends/conformance.py``):

- ``put`` replaces atomically: a reader sees the old bytes or the new, never a mix.
- ``put(if_absent=True)`` fails with ``PreconditionFailed`` when the key exists;
  ``put(if_match=etag)`` fails with ``PreconditionFailed`` unless the key exists
  with that ETag. Exactly one of several racing conditional writers wins.
- ``get`` of a missing key raises ``ObjectNotFound``; ``byte_range`` is
  ``(start, end)`` inclusive-exclusive and is clipped at the object's end.
- ``list`` yields every key under a prefix in lexicographic order, with sizes.
- ``delete`` of a missing key is not an error.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key, size in bytes and ETag (an opaque version tag)."""

    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class GetResult:
    """The bytes of an object (or of the requested range) and the object's ETag."""

    data: bytes
    etag: str


@runtime_checkable
class ObjectStore(Protocol):
    """Bytes under keys: the seam between snapcloud and a storage service."""

    #: A short description for messages (never holds credentials).
    description: str

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Store ``data`` under ``key`` and return its new ETag.

        Raises ``PreconditionFailed`` when a condition does not hold,
        ``BackendError`` / ``RetryableBackendError`` when the service fails.
        """
        ...

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Read an object (or a byte range of it). Raises ``ObjectNotFound``."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Size and ETag of an object, or ``None`` when it does not exist."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order."""
        ...

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """The distinct next path segments under ``prefix`` (which ends with ``/``)."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object; a missing key is not an error."""
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...
