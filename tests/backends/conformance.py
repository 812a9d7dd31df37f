"""One conformance suite for every ObjectStore (zarr's StoreTests shape).

Subclasses set up a store and implement ``raw_put`` / ``raw_get`` that bypass it,
so the suite checks the store against its medium, not against itself.
"""

from __future__ import annotations

import threading

import pytest

from snapcloud.backends import ObjectStore
from snapcloud.errors import ObjectNotFound, PreconditionFailed, ValidationError

BAD_KEYS = ["", "../x", "/abs", "a//b", "a/./b", "a/../b", "a\x00b", "a\\b", "x" * 2000]


class ObjectStoreConformance:
    """Semantics every backend must have; see ``snapcloud/backends/_base.py``."""

    @pytest.fixture
    def store(self) -> ObjectStore:
        raise NotImplementedError

    def raw_put(self, store: ObjectStore, key: str, data: bytes) -> None:
        raise NotImplementedError

    def raw_get(self, store: ObjectStore, key: str) -> bytes | None:
        raise NotImplementedError

    def test_put_get_round_trip(self, store: ObjectStore) -> None:
        etag = store.put("a/b/c.bin", b"hello")
        assert self.raw_get(store, "a/b/c.bin") == b"hello"
        got = store.get("a/b/c.bin")
        assert got.data == b"hello" and got.etag == etag

    def test_medium_and_store_agree(self, store: ObjectStore) -> None:
        self.raw_put(store, "raw/x.bin", b"from the medium")
        assert store.get("raw/x.bin").data == b"from the medium"
        assert [o.key for o in store.list("raw/")] == ["raw/x.bin"]

    def test_overwrite(self, store: ObjectStore) -> None:
        first = store.put("k", b"one")
        second = store.put("k", b"two!")
        assert first != second
        assert store.get("k").data == b"two!"
        assert self.raw_get(store, "k") == b"two!"

    def test_empty_object(self, store: ObjectStore) -> None:
        store.put("empty", b"")
        assert store.get("empty").data == b""
        info = store.head("empty")
        assert info is not None and info.size == 0

    def test_all_byte_values_and_large_object(self, store: ObjectStore) -> None:
        blob = bytes(range(256)) * (8 * 4096)  # 8 MiB
        store.put("big/blob", blob)
        assert store.get("big/blob").data == blob
        assert store.get("big/blob", byte_range=(256, 512)).data == bytes(range(256))

    def test_missing_key(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound) as info:
            store.get("no/such/key")
        assert isinstance(info.value, FileNotFoundError)
        assert store.head("no/such/key") is None

    def test_head(self, store: ObjectStore) -> None:
        etag = store.put("h/x", b"12345")
        info = store.head("h/x")
        assert info is not None and (info.key, info.size, info.etag) == ("h/x", 5, etag)

    def test_byte_ranges(self, store: ObjectStore) -> None:
        store.put("r", b"0123456789")
        assert store.get("r", byte_range=(2, 5)).data == b"234"
        assert store.get("r", byte_range=(8, 100)).data == b"89"
        assert store.get("r", byte_range=(0, 10)).data == b"0123456789"

    def test_list_order_sizes_and_isolation(self, store: ObjectStore) -> None:
        for key in ["p/b", "p/a/2", "p/a/1", "p-other/x", "q/p/z", "p/c/d/e"]:
            store.put(key, key.encode())
        listed = list(store.list("p/"))
        assert [o.key for o in listed] == ["p/a/1", "p/a/2", "p/b", "p/c/d/e"]
        assert [o.size for o in listed] == [len(o.key) for o in listed]
        assert [o.key for o in store.list("p")] == [
            "p-other/x",
            "p/a/1",
            "p/a/2",
            "p/b",
            "p/c/d/e",
        ]
        assert list(store.list("nothing/")) == []
        assert store.list_dirs("p/") == ["a/", "c/"]
        assert store.list_dirs("") == ["p-other/", "p/", "q/"]

    def test_delete(self, store: ObjectStore) -> None:
        store.put("d/x", b"1")
        store.delete("d/x")
        assert store.head("d/x") is None
        assert self.raw_get(store, "d/x") is None
        store.delete("d/x")  # missing: not an error

    def test_if_absent(self, store: ObjectStore) -> None:
        store.put("c/lease", b"mine", if_absent=True)
        with pytest.raises(PreconditionFailed):
            store.put("c/lease", b"theirs", if_absent=True)
        assert store.get("c/lease").data == b"mine"

    def test_if_match(self, store: ObjectStore) -> None:
        etag = store.put("c/seg", b"v1")
        new = store.put("c/seg", b"v2", if_match=etag)
        with pytest.raises(PreconditionFailed):
            store.put("c/seg", b"v3", if_match=etag)
        assert store.get("c/seg").data == b"v2"
        assert store.get("c/seg").etag == new
        with pytest.raises(PreconditionFailed):
            store.put("c/missing", b"x", if_match=etag)
        assert store.head("c/missing") is None

    def test_racing_if_absent_has_one_winner(self, store: ObjectStore) -> None:
        wins: list[int] = []
        barrier = threading.Barrier(8)

        def worker(i: int) -> None:
            barrier.wait()
            try:
                store.put("race/key", str(i).encode(), if_absent=True)
                wins.append(i)
            except PreconditionFailed:
                pass

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        assert store.get("race/key").data == str(wins[0]).encode()

    def test_read_modify_write_with_if_match_loses_nothing(self, store: ObjectStore) -> None:
        store.put("race/counter", b"0")

        def worker() -> None:
            done = 0
            while done < 10:
                got = store.get("race/counter")
                try:
                    store.put("race/counter", str(int(got.data) + 1).encode(), if_match=got.etag)
                    done += 1
                except PreconditionFailed:
                    continue

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get("race/counter").data == b"60"

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_bad_keys_are_refused(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(ValidationError):
            store.put(key, b"x")
        with pytest.raises(ValidationError):
            store.get(key)
