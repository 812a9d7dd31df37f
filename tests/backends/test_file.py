"""FileStore: the conformance suite, plus processes, crashes and atomicity."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from snapcloud.backends import FileStore, ObjectStore
from snapcloud.errors import BackendError, ConfigError, PreconditionFailed, ValidationError
from snapcloud.testing.store import ObjectStoreConformance


class TestFileStore(ObjectStoreConformance):
    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"

    def make_store(self) -> ObjectStore:
        return FileStore(self.root)

    def raw_put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def raw_get(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None


# ---------------------------------------------------------------------- processes

WON, LOST = 10, 11
INCREMENTS = 10


def _contend(root: str, i: int, barrier: Any) -> None:
    """In a child process: race for ``lease`` once, then increment ``counter`` INCREMENTS times."""
    store = FileStore(root)
    barrier.wait(timeout=60)
    try:
        store.put("lease", b"%d" % i, if_absent=True)
        won = True
    except PreconditionFailed:
        won = False
    done = 0
    while done < INCREMENTS:
        got = store.get("counter")
        try:
            store.put("counter", b"%d" % (int(got.data) + 1), if_match=got.etag)
            done += 1
        except PreconditionFailed:
            pass
    sys.exit(WON if won else LOST)


def test_conditional_puts_hold_across_processes(tmp_path: Path) -> None:
    n = 4
    FileStore(tmp_path).put("counter", b"0")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), i, barrier)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    codes = [p.exitcode for p in procs]
    assert sorted(codes) == [WON] + [LOST] * (n - 1), codes
    winner = codes.index(WON)
    store = FileStore(tmp_path)
    assert store.get("lease").data == b"%d" % winner
    assert store.get("counter").data == b"%d" % (n * INCREMENTS)


# ---------------------------------------------------------------------- crashes, atomicity


def test_crash_leftover_temp_files_are_never_listed(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("a/b", b"1")
    (tmp_path / ".tmp" / "0123abcd.part").write_bytes(b"half a write")
    (tmp_path / ".tmp" / "nested").mkdir()
    (tmp_path / ".tmp" / "nested" / "x").write_bytes(b"?")
    assert [o.key for o in store.list("")] == ["a/b"]
    assert [o.key for o in store.list(".t")] == []
    assert list(store.list(".tmp/")) == []
    assert store.list_dirs("") == ["a/"]


def test_stale_temp_files_are_swept_when_a_store_opens(tmp_path: Path) -> None:
    FileStore(tmp_path)
    stale, fresh = tmp_path / ".tmp" / "old.part", tmp_path / ".tmp" / "new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    FileStore(tmp_path)
    assert not stale.exists() and fresh.exists()


def test_a_failed_rename_leaves_the_old_object_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    store.put("k", b"old")
    calls: list[tuple[str, str]] = []

    def failing_replace(src: str, dst: str) -> None:
        calls.append((str(src), str(dst)))
        raise OSError(errno.EIO, "injected I/O error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(BackendError) as info:
        store.put("k", b"new")
    monkeypatch.undo()
    assert "injected I/O error" in str(info.value)
    [(src, dst)] = calls  # the write is one os.replace from .tmp/ onto the key's path
    assert Path(src).parent == tmp_path / ".tmp" and Path(dst) == tmp_path / "k"
    assert store.get("k").data == b"old"
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_readers_never_see_a_partial_write(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    versions = [bytes([65 + i]) * (256 << 10) for i in range(2)]
    store.put("k", versions[0])
    done = threading.Event()

    def writer() -> None:
        for i in range(24):
            store.put("k", versions[i % 2])
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        got = store.get("k")
        assert got.data in versions
        assert got.etag == hashlib.md5(got.data).hexdigest()
        reads += 1
    thread.join()


# ---------------------------------------------------------------------- layout


@pytest.mark.parametrize("key", [".tmp/x", ".lock", ".tmp"])
def test_the_store_own_files_are_not_keys(tmp_path: Path, key: str) -> None:
    store = FileStore(tmp_path)
    with pytest.raises(ValidationError):
        store.put(key, b"x")
    with pytest.raises(ValidationError):
        store.get(key)


def test_delete_prunes_emptied_directories_only(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("x/y/z", b"1")
    store.put("x/keep", b"2")
    store.delete("x/y/z")
    assert not (tmp_path / "x" / "y").exists()
    assert (tmp_path / "x" / "keep").is_file()
    store.delete("x/keep")
    assert not (tmp_path / "x").exists()
    assert tmp_path.is_dir() and (tmp_path / ".tmp").is_dir()


def test_an_object_and_a_directory_cannot_share_a_path(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("a", b"object")
    with pytest.raises(BackendError, match="both an object and a directory"):
        store.put("a/b", b"x")
    assert store.get("a").data == b"object"


def test_files_other_tools_left_with_bad_names_are_skipped(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("ok/1", b"1")
    (tmp_path / "ok" / "back\\slash").write_bytes(b"?")
    assert [o.key for o in store.list("ok/")] == ["ok/1"]


def test_a_root_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ConfigError):
        FileStore(tmp_path / "file")
