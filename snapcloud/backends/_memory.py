"""An in-process ``ObjectStore``: a dict behind a lock (tests, demos, ``memory://``).

``memory://NAME`` URLs name process-wide stores (``MemoryStore.named``), so a
CLI call and a test in one process see the same objects; ``MemoryStore()``
is private to whoever holds it. Every method raises ``ValidationError`` for a
bad key.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
from collections.abc import Iterator

from snapcloud.backends._base import GetResult, ObjectInfo
from snapcloud.backends._keys import check_conditions, check_key, check_prefix, check_range
from snapcloud.errors import ObjectNotFound, PreconditionFailed

_REGISTRY: dict[str, MemoryStore] = {}
_REGISTRY_LOCK = threading.Lock()


def md5_etag(data: bytes) -> str:
    """The ETag of the local backends: MD5 hex of the content, as S3 gives for a simple put."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class MemoryStore:
    """Objects in a dict; every operation, conditional puts included, is atomic under one lock."""

    supports_lifecycle = False

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.description = f"memory://{name}" if name is not None else "memory (unnamed)"
        self._objects: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def named(cls, name: str = "") -> MemoryStore:
        """The process-wide store ``name`` (what ``memory://name`` opens), made on first use."""
        with _REGISTRY_LOCK:
            store = _REGISTRY.get(name)
            if store is None:
                store = _REGISTRY[name] = cls(name)
            return store

    def __repr__(self) -> str:
        return f"MemoryStore({self.description!r}, objects={len(self._objects)})"

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Store ``data`` under ``key``; raises ``PreconditionFailed``."""
        check_key(key)
        check_conditions(if_absent, if_match)
        blob = bytes(data)
        etag = md5_etag(blob)
        with self._lock:
            current = self._objects.get(key)
            if if_absent and current is not None:
                raise PreconditionFailed(f"{key!r} already exists in {self.description}", key=key)
            if if_match is not None and (current is None or current[1] != if_match.strip('"')):
                raise PreconditionFailed(f"{key!r} is not at ETag {if_match}", key=key)
            self._objects[key] = (blob, etag)
        return etag

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Read an object or a byte range of it; raises ``ObjectNotFound``."""
        check_key(key)
        check_range(byte_range)
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise ObjectNotFound(f"no object {key!r} in {self.description}", key=key)
        data, etag = found
        if byte_range is not None:
            data = data[byte_range[0] : byte_range[1]]
        return GetResult(data, etag)

    def head(self, key: str) -> ObjectInfo | None:
        """Size and ETag of an object, or ``None``."""
        check_key(key)
        with self._lock:
            found = self._objects.get(key)
        return None if found is None else ObjectInfo(key, len(found[0]), found[1])

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order, as of the call."""
        check_prefix(prefix)
        with self._lock:
            items = sorted((k, v) for k, v in self._objects.items() if k.startswith(prefix))
        return iter([ObjectInfo(key, len(data), etag) for key, (data, etag) in items])

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Distinct next segments under ``prefix``, each ending ``/``."""
        check_prefix(prefix)
        with self._lock:
            rests = [k[len(prefix) :] for k in self._objects if k.startswith(prefix)]
        return sorted({rest.split("/", 1)[0] + "/" for rest in rests if "/" in rest})

    def delete(self, key: str) -> None:
        """Remove an object; a missing key is fine."""
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def close(self) -> None:
        """Nothing to release (the objects stay, for other holders of a named store)."""
