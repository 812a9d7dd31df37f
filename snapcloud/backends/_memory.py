"""An in-process ``ObjectStore``: a dict behind a lock (tests, demos, ``memory://``)."""

from __future__ import annotations

import builtins
import hashlib
import threading
from collections.abc import Iterator

from snapcloud.backends._base import GetResult, ObjectInfo
from snapcloud.backends._keys import check_key, check_prefix
from snapcloud.errors import ObjectNotFound, PreconditionFailed

_REGISTRY: dict[str, MemoryStore] = {}
_REGISTRY_LOCK = threading.Lock()


def etag_of(data: bytes) -> str:
    """The ETag every local backend uses: MD5 hex of the content, as S3 does for simple puts."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class MemoryStore:
    """Objects in a dict; conditional puts are atomic under one lock."""

    def __init__(self, name: str = "") -> None:
        self.description = f"memory://{name}"
        self._data: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def named(cls, name: str) -> MemoryStore:
        """The process-wide store called ``name`` (created on first use)."""
        with _REGISTRY_LOCK:
            if name not in _REGISTRY:
                _REGISTRY[name] = cls(name)
            return _REGISTRY[name]

    def __repr__(self) -> str:
        return f"MemoryStore({self.description!r}, objects={len(self._data)})"

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Store ``data``; raises ``PreconditionFailed`` when a condition does not hold."""
        check_key(key)
        blob = bytes(data)
        etag = etag_of(blob)
        with self._lock:
            current = self._data.get(key)
            if if_absent and current is not None:
                raise PreconditionFailed(f"{key} already exists", key=key)
            if if_match is not None and (current is None or current[1] != if_match):
                raise PreconditionFailed(f"{key} changed (ETag mismatch)", key=key)
            self._data[key] = (blob, etag)
        return etag

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Read an object or a byte range of it; raises ``ObjectNotFound``."""
        check_key(key)
        with self._lock:
            found = self._data.get(key)
        if found is None:
            raise ObjectNotFound(f"no object {key} in {self.description}", key=key)
        data, etag = found
        if byte_range is not None:
            data = data[byte_range[0] : byte_range[1]]
        return GetResult(data, etag)

    def head(self, key: str) -> ObjectInfo | None:
        """Size and ETag, or ``None``."""
        check_key(key)
        with self._lock:
            found = self._data.get(key)
        return None if found is None else ObjectInfo(key, len(found[0]), found[1])

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order (a snapshot of the moment of the call)."""
        check_prefix(prefix)
        with self._lock:
            items = sorted((k, v) for k, v in self._data.items() if k.startswith(prefix))
        for key, (data, etag) in items:
            yield ObjectInfo(key, len(data), etag)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Distinct next segments under ``prefix``, each ending with ``/``."""
        check_prefix(prefix)
        with self._lock:
            keys = [k[len(prefix) :] for k in self._data if k.startswith(prefix)]
        return sorted({k.split("/", 1)[0] + "/" for k in keys if "/" in k})

    def delete(self, key: str) -> None:
        """Remove an object; a missing key is not an error."""
        check_key(key)
        with self._lock:
            self._data.pop(key, None)

    def close(self) -> None:
        """Nothing to release."""
