"""Count the requests and bytes that pass through any ``ObjectStore``."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator

from snapcloud.backends._base import GetResult, ObjectInfo, ObjectStore
from snapcloud.backends._forwarding import ForwardingStore

OPERATIONS = ("put", "get", "head", "list", "list_dirs", "delete")
LIST_PAGE = 1000  # keys per ListObjectsV2 page, S3's default and maximum


class CountingStore(ForwardingStore):
    """Wraps an ``ObjectStore``, counting requests by operation and bytes moved (thread-safe).

    Every call counts once, failed ones too (the service saw the request); a
    ``list`` counts once more for each further page of 1000 keys, as S3 bills
    it. ``bytes_written`` counts bytes handed to ``put``; ``bytes_read`` the
    bytes ``get`` returned. Bucket lifecycle requests are forwarded uncounted
    (they are about the bucket, not its objects). Raises whatever the inner store
    raises.
    """

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self._requests = dict.fromkeys(OPERATIONS, 0)
        self._bytes = {"bytes_written": 0, "bytes_read": 0}

    def counts(self) -> dict[str, int]:
        """A copy of the request counts, one entry per operation (bytes are in ``bytes_moved``)."""
        with self._lock:
            return dict(self._requests)

    def bytes_moved(self) -> dict[str, int]:
        """A copy of ``{"bytes_written": ..., "bytes_read": ...}``."""
        with self._lock:
            return dict(self._bytes)

    def reset(self) -> None:
        """Set every count back to zero."""
        with self._lock:
            self._requests = dict.fromkeys(OPERATIONS, 0)
            self._bytes = {"bytes_written": 0, "bytes_read": 0}

    def _add(self, op: str, moved: str | None = None, size: int = 0) -> None:
        with self._lock:
            self._requests[op] += 1
            if moved is not None:
                self._bytes[moved] += size

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Count and forward a put."""
        self._add("put", "bytes_written", len(data))
        return self.inner.put(key, data, if_absent=if_absent, if_match=if_match)

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Count and forward a get."""
        self._add("get")
        got = self.inner.get(key, byte_range=byte_range)
        with self._lock:
            self._bytes["bytes_read"] += len(got.data)
        return got

    def head(self, key: str) -> ObjectInfo | None:
        """Count and forward a head."""
        self._add("head")
        return self.inner.head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Count and forward a list: one request, plus one per further page of 1000 keys."""
        self._add("list")
        return self._paged(self.inner.list(prefix))

    def _paged(self, infos: Iterator[ObjectInfo]) -> Iterator[ObjectInfo]:
        for n, info in enumerate(infos):
            if n and n % LIST_PAGE == 0:
                self._add("list")
            yield info

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Count and forward a list_dirs."""
        self._add("list_dirs")
        return self.inner.list_dirs(prefix)

    def delete(self, key: str) -> None:
        """Count and forward a delete."""
        self._add("delete")
        self.inner.delete(key)
