"""A store that forwards every call to another: the base of wrappers that change one thing."""

from __future__ import annotations

import builtins
from collections.abc import Iterator

from snapcloud.backends._base import GetResult, ObjectInfo, ObjectStore


class ForwardingStore:
    """Forwards every ``ObjectStore`` call to ``inner``; subclasses override what they change
    (fault injection, gates, kill points, latency models)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.description = inner.description

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        return self.inner.put(key, data, if_absent=if_absent, if_match=if_match)

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        return self.inner.get(key, byte_range=byte_range)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        return self.inner.list_dirs(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def close(self) -> None:
        self.inner.close()
