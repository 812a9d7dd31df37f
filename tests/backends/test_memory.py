from __future__ import annotations

import pytest

from snapcloud.backends import MemoryStore, ObjectStore
from tests.backends.conformance import ObjectStoreConformance


class TestMemoryStore(ObjectStoreConformance):
    @pytest.fixture
    def store(self) -> ObjectStore:
        return MemoryStore()

    def raw_put(self, store: ObjectStore, key: str, data: bytes) -> None:
        assert isinstance(store, MemoryStore)
        store._data[key] = (data, "raw")

    def raw_get(self, store: ObjectStore, key: str) -> bytes | None:
        assert isinstance(store, MemoryStore)
        found = store._data.get(key)
        return None if found is None else found[0]


def test_named_stores_are_shared_within_a_process() -> None:
    MemoryStore.named("shared-test").put("k", b"v")
    assert MemoryStore.named("shared-test").get("k").data == b"v"
    assert MemoryStore.named("other-test").head("k") is None
