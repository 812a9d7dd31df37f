"""One conformance suite for every ``ObjectStore`` (the shape of zarr's ``StoreTests``,
thanos objstore's ``AcceptanceTest``); needs pytest (the ``test`` extra).

A backend's test class subclasses ``ObjectStoreConformance`` and implements
``make_store()`` plus ``raw_put`` / ``raw_get``, which BYPASS the store (write
the file, call boto3, poke the dict), so the suite checks the store against
its medium rather than against itself. Per-test setup that needs fixtures
(``tmp_path``, ``s3_bucket``) goes in an autouse fixture of the subclass,
which runs before ``store`` is made. A third-party backend runs it the same way::

    from snapcloud.testing.store import ObjectStoreConformance

    class TestMyStore(ObjectStoreConformance):
        def make_store(self): ...
        def raw_put(self, key, data): ...
        def raw_get(self, key): ...

A store with a capability (``supports_lifecycle``) is checked for it too; the
tests of a capability the store lacks are skipped.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from snapcloud.backends import ObjectInfo, ObjectStore, has_lifecycle
from snapcloud.errors import ObjectNotFound, PreconditionFailed, ValidationError

__all__ = ["BAD_KEYS", "ObjectStoreConformance"]

BAD_KEYS = ["", "../x", "/abs", "a//b", "a/./b", "a/../b", "a/", "a\x00b", "a\nb", "a\\b"]
BAD_KEYS.append("x" * 1025)


def _race(n: int, work: Callable[[int], None]) -> None:
    """Run ``work(0..n-1)`` on n threads released together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so unguarded windows show up
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    if errors:
        raise errors[0]


class ObjectStoreConformance:
    """The semantics of ``snapcloud.backends.ObjectStore``, checked against the medium."""

    #: Read-modify-write race: threads x increments each (a slow medium may lower these).
    rmw_threads = 8
    rmw_increments = 20

    def make_store(self) -> ObjectStore:
        """A new, empty store under test."""
        raise NotImplementedError

    def raw_put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` without going through the store."""
        raise NotImplementedError

    def raw_get(self, key: str) -> bytes | None:
        """The bytes under ``key`` read without the store, or ``None``."""
        raise NotImplementedError

    @pytest.fixture
    def store(self) -> Iterator[ObjectStore]:
        store = self.make_store()
        yield store
        store.close()

    # ------------------------------------------------------------------ put / get

    def test_is_an_object_store(self, store: ObjectStore) -> None:
        assert isinstance(store, ObjectStore)
        assert isinstance(store.description, str) and store.description

    def test_put_get_round_trip(self, store: ObjectStore) -> None:
        etag = store.put("a/b/c.bin", b"hello")
        assert self.raw_get("a/b/c.bin") == b"hello"
        got = store.get("a/b/c.bin")
        assert (got.data, got.etag) == (b"hello", etag)
        assert etag and not etag.startswith('"')

    def test_raw_writes_are_readable_and_listed(self, store: ObjectStore) -> None:
        self.raw_put("raw/x.bin", b"from the medium")
        assert store.get("raw/x.bin").data == b"from the medium"
        info = store.head("raw/x.bin")
        assert info is not None and info.size == 15
        assert [(o.key, o.size) for o in store.list("raw/")] == [("raw/x.bin", 15)]

    def test_overwrite(self, store: ObjectStore) -> None:
        first = store.put("k", b"one")
        second = store.put("k", b"two!")
        assert first != second
        assert self.raw_get("k") == b"two!"
        assert store.get("k").etag == second
        self.raw_put("k", b"three")
        assert store.get("k").data == b"three"

    def test_empty_object(self, store: ObjectStore) -> None:
        etag = store.put("empty", b"")
        assert self.raw_get("empty") == b""
        assert store.get("empty") == store.get("empty", byte_range=(0, 0))
        assert store.get("empty").data == b""
        assert store.get("empty").etag == etag
        assert store.get("empty", byte_range=(0, 10)).data == b""
        assert store.head("empty") == ObjectInfo("empty", 0, etag)

    def test_large_object(self, store: ObjectStore) -> None:
        blob = bytes(range(256)) * (32 * 1024)  # 8 MiB
        store.put("big/blob", blob)
        assert self.raw_get("big/blob") == blob
        assert store.get("big/blob").data == blob
        info = store.head("big/blob")
        assert info is not None and info.size == 8 << 20

    def test_all_byte_values(self, store: ObjectStore) -> None:
        blob = bytes(range(256)) + bytes(range(255, -1, -1))
        store.put("bin", blob)
        assert self.raw_get("bin") == blob
        assert store.get("bin").data == blob
        self.raw_put("bin2", blob)
        assert store.get("bin2").data == blob

    def test_missing_key(self, store: ObjectStore) -> None:
        with pytest.raises(ObjectNotFound) as info:
            store.get("no/such/key")
        assert isinstance(info.value, FileNotFoundError)
        assert getattr(info.value, "key", None) == "no/such/key"
        assert "no/such/key" in str(info.value)
        with pytest.raises(ObjectNotFound):
            store.get("no/such/key", byte_range=(0, 1))
        with pytest.raises(ObjectNotFound):
            store.get("no/such/key", byte_range=(3, 3))

    def test_head(self, store: ObjectStore) -> None:
        etag = store.put("h/x", b"12345")
        info = store.head("h/x")
        assert info is not None and (info.key, info.size, info.etag) == ("h/x", 5, etag)
        assert store.head("h/missing") is None
        assert store.head("h") is None  # a "directory" is not an object

    # ------------------------------------------------------------------ ranges

    def test_byte_ranges(self, store: ObjectStore) -> None:
        etag = store.put("r", b"0123456789")
        assert store.get("r", byte_range=(2, 5)).data == b"234"
        assert store.get("r", byte_range=(2, 5)).etag == etag
        assert store.get("r", byte_range=(8, 100)).data == b"89"
        assert store.get("r", byte_range=(0, 10)).data == b"0123456789"
        assert store.get("r", byte_range=(10, 20)).data == b""
        assert store.get("r", byte_range=(50, 60)).data == b""
        assert store.get("r", byte_range=(4, 4)).data == b""
        assert store.get("r", byte_range=(4, 4)).etag == etag

    @pytest.mark.parametrize("bad", [(-1, 3), (5, 2)])
    def test_bad_ranges_are_refused(self, store: ObjectStore, bad: tuple[int, int]) -> None:
        store.put("r", b"0123456789")
        with pytest.raises(ValidationError):
            store.get("r", byte_range=bad)

    # ------------------------------------------------------------------ list / delete

    def test_list_order_sizes_and_isolation(self, store: ObjectStore) -> None:
        for key in ["p/b", "p/a/2", "p/a/1", "p-other/x", "q/p/z", "p/c/d/e", "pz"]:
            store.put(key, key.encode() * 3)
        listed = list(store.list("p/"))
        assert [o.key for o in listed] == ["p/a/1", "p/a/2", "p/b", "p/c/d/e"]
        assert [o.size for o in listed] == [3 * len(o.key) for o in listed]
        heads = [store.head(o.key) for o in listed]
        assert [(h.key, h.size, h.etag) for h in heads if h] == [
            (o.key, o.size, o.etag) for o in listed
        ]
        assert [o.key for o in store.list("p")] == [
            "p-other/x",
            "p/a/1",
            "p/a/2",
            "p/b",
            "p/c/d/e",
            "pz",
        ]
        assert [o.key for o in store.list("p/a/")] == ["p/a/1", "p/a/2"]
        assert [o.key for o in store.list("p/a/1")] == ["p/a/1"]
        assert [o.key for o in store.list("")][:1] == ["p-other/x"]
        assert len(list(store.list(""))) == 7

    def test_list_of_an_empty_prefix(self, store: ObjectStore) -> None:
        assert list(store.list("")) == []
        assert store.list_dirs("") == []
        store.put("a/b", b"1")
        assert list(store.list("nothing/")) == []
        assert list(store.list("a/b/")) == []
        assert store.list_dirs("nothing/") == []

    def test_list_dirs(self, store: ObjectStore) -> None:
        for key in ["p/a/1", "p/a/2", "p/b", "p/c/d/e", "p-other/x", "top"]:
            store.put(key, b"x")
        assert store.list_dirs("p/") == ["a/", "c/"]
        assert store.list_dirs("p/c/") == ["d/"]
        assert store.list_dirs("") == ["p-other/", "p/"]

    def test_delete(self, store: ObjectStore) -> None:
        store.put("d/x", b"1")
        store.put("d/y", b"2")
        store.delete("d/x")
        assert store.head("d/x") is None
        assert self.raw_get("d/x") is None
        assert [o.key for o in store.list("d/")] == ["d/y"]
        store.delete("d/x")  # missing: not an error
        store.delete("never/was")
        store.delete("d/y")
        assert list(store.list("")) == [] and store.list_dirs("") == []

    # ------------------------------------------------------------------ conditional puts

    def test_if_absent(self, store: ObjectStore) -> None:
        etag = store.put("c/lease", b"mine", if_absent=True)
        assert store.get("c/lease").etag == etag
        with pytest.raises(PreconditionFailed):
            store.put("c/lease", b"theirs", if_absent=True)
        assert self.raw_get("c/lease") == b"mine"
        self.raw_put("c/raw", b"there")
        with pytest.raises(PreconditionFailed):
            store.put("c/raw", b"theirs", if_absent=True)

    def test_if_match(self, store: ObjectStore) -> None:
        etag = store.put("c/seg", b"v1")
        new = store.put("c/seg", b"v2", if_match=etag)
        assert store.get("c/seg").etag == new != etag
        with pytest.raises(PreconditionFailed):
            store.put("c/seg", b"v3", if_match=etag)  # stale
        assert self.raw_get("c/seg") == b"v2"
        v4 = store.put("c/seg", b"v4", if_match=f'"{new}"')  # a quoted ETag works too
        self.raw_put("c/seg", b"changed behind our back")
        with pytest.raises(PreconditionFailed):
            store.put("c/seg", b"v5", if_match=v4)
        assert self.raw_get("c/seg") == b"changed behind our back"

    def test_if_match_on_a_missing_key_fails(self, store: ObjectStore) -> None:
        etag = store.put("c/there", b"x")
        with pytest.raises(PreconditionFailed):
            store.put("c/missing", b"x", if_match=etag)
        assert store.head("c/missing") is None
        assert self.raw_get("c/missing") is None

    def test_conditions_are_exclusive(self, store: ObjectStore) -> None:
        etag = store.put("c/k", b"x")
        with pytest.raises(ValidationError):
            store.put("c/k", b"y", if_absent=True, if_match=etag)
        assert self.raw_get("c/k") == b"x"

    def test_racing_if_absent_has_one_winner(self, store: ObjectStore) -> None:
        wins: list[int] = []

        def claim(i: int) -> None:
            try:
                store.put("race/key", str(i).encode(), if_absent=True)
                wins.append(i)
            except PreconditionFailed:
                pass

        _race(8, claim)
        assert len(wins) == 1
        assert self.raw_get("race/key") == str(wins[0]).encode()

    def test_racing_read_modify_write_loses_no_update(self, store: ObjectStore) -> None:
        store.put("race/counter", b"0")

        def increment(_: int) -> None:
            done = 0
            while done < self.rmw_increments:
                got = store.get("race/counter")
                try:
                    store.put("race/counter", b"%d" % (int(got.data) + 1), if_match=got.etag)
                    done += 1
                except PreconditionFailed:
                    pass  # someone else incremented first: read again

        _race(self.rmw_threads, increment)
        assert self.raw_get("race/counter") == b"%d" % (self.rmw_threads * self.rmw_increments)

    # ------------------------------------------------------------------ keys

    @pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k[:12]))
    def test_bad_keys_are_refused(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(ValidationError):
            store.put(key, b"x")
        with pytest.raises(ValidationError):
            store.get(key)
        with pytest.raises(ValidationError):
            store.head(key)
        with pytest.raises(ValidationError):
            store.delete(key)
        assert list(store.list("")) == []

    @pytest.mark.parametrize("prefix", ["../", "/abs/", "a//", "a/../"])
    def test_bad_prefixes_are_refused(self, store: ObjectStore, prefix: str) -> None:
        with pytest.raises(ValidationError):
            store.list(prefix)
        with pytest.raises(ValidationError):
            store.list_dirs(prefix)

    # ------------------------------------------------------------------ capabilities

    def test_capabilities_are_flags(self, store: ObjectStore) -> None:
        assert isinstance(store.supports_lifecycle, bool)
        assert has_lifecycle(store) is store.supports_lifecycle

    def test_lifecycle_rules_round_trip(self, store: ObjectStore) -> None:
        if not has_lifecycle(store):
            pytest.skip("the store keeps no bucket lifecycle rules")
        prefix = store.lifecycle_prefix
        assert prefix == "" or (prefix.endswith("/") and not prefix.startswith("/"))
        assert store.get_lifecycle() == {"Rules": []}  # a new bucket has none

        def rule(name: str, days: int) -> dict[str, object]:
            return {
                "ID": f"conformance-{name}",
                "Filter": {"Prefix": f"{prefix}{name}/"},
                "Status": "Enabled",
                "Expiration": {"Days": days},
            }

        store.put_lifecycle({"Rules": [rule("a", 3), rule("b", 5)]})
        assert store.get_lifecycle() == {"Rules": [rule("a", 3), rule("b", 5)]}
        store.put_lifecycle({"Rules": [rule("c", 7)]})  # replaces, does not merge
        assert store.get_lifecycle() == {"Rules": [rule("c", 7)]}
