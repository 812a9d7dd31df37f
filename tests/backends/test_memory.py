"""MemoryStore and the wrappers (ForwardingStore, CountingStore): the conformance suite plus
what is theirs alone."""

from __future__ import annotations

import hashlib
import sys
import threading

import pytest

from snapcloud.backends import (
    CountingStore,
    ForwardingStore,
    MemoryStore,
    ObjectStore,
    open_store,
)
from snapcloud.errors import ObjectNotFound, PreconditionFailed
from snapcloud.testing.store import ObjectStoreConformance


def _poke(store: MemoryStore, key: str, data: bytes) -> None:
    store._objects[key] = (data, hashlib.md5(data).hexdigest())


def _peek(store: MemoryStore, key: str) -> bytes | None:
    found = store._objects.get(key)
    return None if found is None else found[0]


class TestMemoryStore(ObjectStoreConformance):
    def make_store(self) -> ObjectStore:
        self.memory = MemoryStore()
        return self.memory

    def raw_put(self, key: str, data: bytes) -> None:
        _poke(self.memory, key, data)

    def raw_get(self, key: str) -> bytes | None:
        return _peek(self.memory, key)


class TestForwardingStore(ObjectStoreConformance):
    """The base of every wrapper passes every semantic of the store it wraps through."""

    def make_store(self) -> ObjectStore:
        self.memory = MemoryStore()
        return ForwardingStore(self.memory)

    def raw_put(self, key: str, data: bytes) -> None:
        _poke(self.memory, key, data)

    def raw_get(self, key: str) -> bytes | None:
        return _peek(self.memory, key)


class TestCountingStore(TestForwardingStore):
    """The wrapper must pass every semantic of the store it wraps through unchanged."""

    def make_store(self) -> ObjectStore:
        self.memory = MemoryStore()
        return CountingStore(self.memory)


def test_memory_urls_share_one_store_per_name() -> None:
    open_store("memory://shared-test").put("k", b"v")
    assert open_store("memory://shared-test").get("k").data == b"v"
    assert MemoryStore.named("shared-test") is open_store("memory://shared-test")
    assert open_store("memory://other-test").head("k") is None
    assert open_store("memory://") is MemoryStore.named("")
    assert MemoryStore().head("k") is None  # an unnamed store is private


def test_counts_requests_and_bytes_by_operation() -> None:
    store = CountingStore(MemoryStore())
    etags = [store.put("a/1", b"12345"), store.put("a/2", b"678")]
    with pytest.raises(PreconditionFailed):
        store.put("a/1", b"x", if_absent=True)
    assert store.get("a/1", byte_range=(1, 3)).data == b"23"
    with pytest.raises(ObjectNotFound):
        store.get("missing")
    store.head("a/1")
    assert [o.etag for o in store.list("a/")] == etags
    store.list_dirs("")
    store.delete("a/2")
    assert store.counts() == {
        "put": 3,
        "get": 2,
        "head": 1,
        "list": 1,
        "list_dirs": 1,
        "delete": 1,
    }
    assert store.bytes_moved() == {"bytes_written": 9, "bytes_read": 2}
    copy = store.counts()
    copy["put"] = 99
    assert store.counts()["put"] == 3
    store.reset()
    assert sum(store.counts().values()) == 0
    assert store.bytes_moved() == {"bytes_written": 0, "bytes_read": 0}


def test_a_long_listing_counts_one_request_per_page_of_1000() -> None:
    inner = MemoryStore()
    for i in range(2500):
        inner.put(f"k/{i:05d}", b"")
    store = CountingStore(inner)
    assert len(list(store.list("k/"))) == 2500
    assert store.counts()["list"] == 3
    store.reset()
    assert len(list(store.list("k/0000"))) == 10
    assert store.counts()["list"] == 1


def test_counting_is_thread_safe() -> None:
    store = CountingStore(MemoryStore())
    store.put("k", b"abcd")
    store.reset()
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(2000):
            store.get("k")

    threads = [threading.Thread(target=work) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so an unguarded update shows up
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert store.counts()["get"] == 16000
    assert store.bytes_moved()["bytes_read"] == 64000
