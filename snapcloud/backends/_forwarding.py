"""A store that forwards every call to another: the base of wrappers that change one thing."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

from snapcloud.backends._base import (
    GetResult,
    LifecycleStore,
    ObjectInfo,
    ObjectStore,
    has_lifecycle,
)
from snapcloud.errors import ConfigError


class ForwardingStore:
    """Forwards every ``ObjectStore`` call to ``inner``; subclasses override what they change
    (counting, caching, fault injection, gates, kill points, latency models).

    Capabilities are the inner store's: ``supports_lifecycle`` and, when it is set, the
    ``LifecycleStore`` methods (which raise ``ConfigError`` on a store without them).
    """

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

    # ------------------------------------------------------------------ capabilities

    @property
    def supports_lifecycle(self) -> bool:
        return self.inner.supports_lifecycle

    def _lifecycle(self) -> LifecycleStore:
        if not has_lifecycle(self.inner):
            raise ConfigError(f"{self.description} keeps no bucket lifecycle rules", field="store")
        return self.inner

    @property
    def lifecycle_prefix(self) -> str:
        return self._lifecycle().lifecycle_prefix

    def get_lifecycle(self) -> dict[str, Any]:
        return self._lifecycle().get_lifecycle()

    def put_lifecycle(self, config: dict[str, Any]) -> None:
        self._lifecycle().put_lifecycle(config)
