"""What ``snapcloud serve`` keeps between requests: data objects by key, catalog briefly.

- A raw data object's key names its content checksum (architecture D7: such a key is
  never overwritten), so its bytes are cached by key in an LRU bounded in bytes.
  Whatever the cache returns is still checked by the reader: the frame CRC32C over
  every byte and the content checksum against the index entry.
- Catalog entries and the ``catalog/`` listing change when a host is refreshed or
  labelled; they are kept ``catalog_ttl_s`` seconds (a label change shows up that late).
- Index segments and listings are never cached: they say what exists now.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

from snapcloud.backends import ForwardingStore, GetResult, ObjectInfo, ObjectStore
from snapcloud.layout import CATALOG_PREFIX, names_content

__all__ = ["ServeCache"]


class ServeCache(ForwardingStore):
    """An ``ObjectStore`` wrapper caching immutable data objects and, briefly, the catalog."""

    def __init__(
        self,
        inner: ObjectStore,
        *,
        max_bytes: int = 256 * 2**20,
        catalog_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(inner)
        self.max_bytes = max_bytes
        self.catalog_ttl_s = catalog_ttl_s
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[str, GetResult] = OrderedDict()
        self._bytes = 0
        self._catalog: dict[str, tuple[float, GetResult | None]] = {}
        self._listing: tuple[float, list[ObjectInfo]] | None = None
        self._lock = threading.Lock()

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        if byte_range is None and names_content(key):
            return self._get_data(key)
        if byte_range is None and key.startswith(CATALOG_PREFIX) and self.catalog_ttl_s > 0:
            return self._get_catalog(key)
        return self.inner.get(key, byte_range=byte_range)

    def _get_data(self, key: str) -> GetResult:
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        got = self.inner.get(key)
        size = len(got.data)
        if size <= self.max_bytes // 8:  # one object never takes more than an eighth
            with self._lock:
                if key not in self._data:
                    self._data[key] = got
                    self._bytes += size
                while self._bytes > self.max_bytes and self._data:
                    _, old = self._data.popitem(last=False)
                    self._bytes -= len(old.data)
        return got

    def _get_catalog(self, key: str) -> GetResult:
        now = self.clock()
        with self._lock:
            found = self._catalog.get(key)
        if found is not None and now - found[0] < self.catalog_ttl_s and found[1] is not None:
            return found[1]
        got = self.inner.get(key)
        with self._lock:
            self._catalog[key] = (now, got)
        return got

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        if prefix != CATALOG_PREFIX or self.catalog_ttl_s <= 0:
            return self.inner.list(prefix)
        now = self.clock()
        with self._lock:
            cached = self._listing
        if cached is None or now - cached[0] >= self.catalog_ttl_s:
            cached = (now, builtins.list(self.inner.list(prefix)))
            with self._lock:
                self._listing = cached
        return iter(cached[1])

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        with self._lock:  # this process's own writes are seen at once
            self._catalog.pop(key, None)
            if key.startswith(CATALOG_PREFIX):
                self._listing = None
        return self.inner.put(key, data, if_absent=if_absent, if_match=if_match)

    @property
    def cached_bytes(self) -> int:
        """Bytes of data objects held now."""
        return self._bytes
