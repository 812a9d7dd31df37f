"""Count the requests and bytes that pass through any ``ObjectStore``."""

from __future__ import annotations

import builtins
import threading
from collections import Counter
from collections.abc import Iterator

from snapcloud.backends._base import GetResult, ObjectInfo, ObjectStore


class CountingStore:
    """Wraps an ``ObjectStore`` and counts requests by operation (thread-safe).

    A ``list`` counts one request per 1000 keys started, as S3 pages them.
    """

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.description = inner.description
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CountingStore({self.inner!r})"

    def _count(self, op: str, n: int = 1) -> None:
        with self._lock:
            self._counts[op] += n

    def counts(self) -> dict[str, int]:
        """Requests by operation."""
        with self._lock:
            return {k: v for k, v in self._counts.items() if not k.startswith("bytes_")}

    def bytes_moved(self) -> dict[str, int]:
        """``bytes_written`` and ``bytes_read`` so far."""
        with self._lock:
            return {k: self._counts[k] for k in ("bytes_written", "bytes_read")}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        self._count("put")
        self._count("bytes_written", len(data))
        return self.inner.put(key, data, if_absent=if_absent, if_match=if_match)

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        self._count("get")
        got = self.inner.get(key, byte_range=byte_range)
        self._count("bytes_read", len(got.data))
        return got

    def head(self, key: str) -> ObjectInfo | None:
        self._count("head")
        return self.inner.head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._count("list")
        for n, info in enumerate(self.inner.list(prefix), start=1):
            if n % 1000 == 0:
                self._count("list")
            yield info

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        self._count("list")
        return self.inner.list_dirs(prefix)

    def delete(self, key: str) -> None:
        self._count("delete")
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()

    @property
    def requests(self) -> int:
        """All requests so far (bytes not included)."""
        with self._lock:
            return sum(v for k, v in self._counts.items() if not k.startswith("bytes_"))
