from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from snapcloud.backends import FileStore, ObjectStore
from snapcloud.errors import PreconditionFailed
from tests.backends.conformance import ObjectStoreConformance


class TestFileStore(ObjectStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ObjectStore:
        return FileStore(tmp_path / "root")

    def raw_put(self, store: ObjectStore, key: str, data: bytes) -> None:
        assert isinstance(store, FileStore)
        path = store.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def raw_get(self, store: ObjectStore, key: str) -> bytes | None:
        assert isinstance(store, FileStore)
        path = store.root / key
        return path.read_bytes() if path.exists() else None


def _claim(root: str, i: int, results: multiprocessing.Queue[int]) -> None:
    try:
        FileStore(root).put("lease", str(i).encode(), if_absent=True)
        results.put(i)
    except PreconditionFailed:
        results.put(-1)


def test_if_absent_across_processes_has_one_winner(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(str(tmp_path), i, results)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    got = [results.get(timeout=5) for _ in procs]
    winners = [g for g in got if g >= 0]
    assert len(winners) == 1
    assert FileStore(tmp_path).get("lease").data == str(winners[0]).encode()


def test_leftover_temp_files_are_not_listed(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("a/b", b"1")
    (tmp_path / ".tmp" / "crashed.part").write_bytes(b"half a write")
    assert [o.key for o in store.list("")] == ["a/b"]
    assert store.list_dirs("") == ["a/"]


def test_delete_prunes_empty_directories(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("x/y/z", b"1")
    store.delete("x/y/z")
    assert not (tmp_path / "x").exists()
