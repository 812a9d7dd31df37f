"""The ``ObjectStore`` protocol every backend implements, and what it returns.

A backend stores opaque bytes under ``/``-separated keys. It knows nothing of
snapshots. Semantics every backend honours (checked by the conformance suite,
``snapcloud.testing.store.ObjectStoreConformance``):

- ``put`` replaces atomically: a reader sees the old bytes or the new, never a mix.
- ``put(if_absent=True)`` fails with ``PreconditionFailed`` when the key exists;
  ``put(if_match=etag)`` fails with ``PreconditionFailed`` unless the key exists
  with that ETag. Exactly one of several racing conditional writers wins.
- ``get`` of a missing key raises ``ObjectNotFound``; ``byte_range`` is
  ``(start, end)`` inclusive-exclusive and is clipped at the object's end.
- ``list`` yields every key under a prefix in lexicographic order, with sizes.
- ``delete`` of a missing key is not an error.

What only some services offer is a capability: a ``supports_*`` flag every store
carries (as zarr's ``supports_writes``), and the methods of a narrower protocol
that a store with the flag set also implements. Wrapping stores forward both.
Callers ask the flag (``has_lifecycle``), never the backend's class.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard, runtime_checkable


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

    @property
    def supports_lifecycle(self) -> bool:
        """Whether the store keeps a bucket lifecycle configuration: then it is also a
        ``LifecycleStore`` (S3 and S3-compatible services). Wrappers forward it."""
        ...

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


@runtime_checkable
class LifecycleStore(ObjectStore, Protocol):
    """An ``ObjectStore`` whose bucket keeps lifecycle rules (``supports_lifecycle``).

    The configuration is in the S3 API's shape, ``{"Rules": [...]}``; rules filter
    on keys of the whole bucket, so ``lifecycle_prefix`` says where this store's
    keys sit in it. Both methods raise ``BackendError`` when the service fails.
    """

    @property
    def lifecycle_prefix(self) -> str:
        """The prefix of this store's keys in its bucket (``""`` or ending with ``/``)."""
        ...

    def get_lifecycle(self) -> dict[str, Any]:
        """The bucket's lifecycle configuration (``{"Rules": []}`` when it has none)."""
        ...

    def put_lifecycle(self, config: dict[str, Any]) -> None:
        """Replace the bucket's lifecycle configuration with ``config``."""
        ...


def has_lifecycle(store: ObjectStore) -> TypeGuard[LifecycleStore]:
    """Whether ``store`` keeps bucket lifecycle rules (its ``supports_lifecycle`` flag)."""
    return store.supports_lifecycle
