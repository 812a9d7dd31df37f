"""The spool: durable, ordered, bounded, self-checking, one recorder at a time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from snapcloud.errors import LeaseHeld, ValidationError
from snapcloud.recorder import Spool
from tests.recorder.fakes import snapshot


def test_put_then_reopen_gives_the_same_snapshots_in_order(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        paths = [spool.put(snapshot("h1", i)) for i in range(3)]
        assert spool.pending() == paths
        assert spool.size_bytes == sum(p.stat().st_size for p in paths)
    with Spool(tmp_path) as again:
        assert again.pending() == paths
        loaded = [again.load(p) for p in paths]
        assert all(s is not None for s in loaded)
        assert [s.metadata["window"] for s in loaded if s is not None] == [0, 1, 2]
        sid = loaded[0].metadata["spool_id"] if loaded[0] else None
        assert Spool.spool_id(paths[0]) == sid
        # numbering goes on after the files left behind
        nxt = again.put(snapshot("h1", 3))
        assert again.pending()[-1] == nxt and nxt.name.startswith("000000000003-")


def test_the_loaded_snapshot_is_the_one_put_plus_its_spool_id(tmp_path: Path) -> None:
    snap = snapshot("h1", 0)
    with Spool(tmp_path) as spool:
        got = spool.load(spool.put(snap))
    assert got is not None
    assert got.metrics == snap.metrics
    assert got.metadata == {**snap.metadata, "spool_id": got.metadata["spool_id"]}
    assert (got.window_start, got.window_end, got.labels) == (
        snap.window_start,
        snap.window_end,
        snap.labels,
    )


def test_bound_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=10**9) as probe:
        one = probe.put(snapshot("h1", 0)).stat().st_size
    for p in tmp_path.glob("*.snap"):
        p.unlink()
    with Spool(tmp_path, max_bytes=int(one * 3.5)) as spool:
        paths = [spool.put(snapshot("h1", i)) for i in range(3)]
        assert spool.enforce_bound() == 0
        paths.append(spool.put(snapshot("h1", 3)))
        paths.append(spool.put(snapshot("h1", 4)))
        assert spool.enforce_bound() == 2
        assert spool.pending() == paths[2:]
        assert spool.dropped_total == 2
        assert spool.size_bytes <= spool.max_bytes


def test_bound_keeps_the_newest_and_the_file_being_uploaded(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1) as spool:
        first = spool.put(snapshot("h1", 0))
        spool.put(snapshot("h1", 1))
        with spool.busy(first):
            last = spool.put(snapshot("h1", 2))
            assert spool.enforce_bound() == 1  # only the middle one could go
            assert spool.pending() == [first, last]
        assert spool.enforce_bound() == 1
        assert spool.pending() == [last]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # torn write
        lambda b: b"",  # empty file
        lambda b: b[:40] + bytes([b[40] ^ 0xFF]) + b[41:],  # flipped bits
    ],
    ids=["truncated", "empty", "bitflip"],
)
def test_a_corrupt_file_is_quarantined_not_loaded(
    tmp_path: Path, damage: Callable[[bytes], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path) as spool:
        bad = spool.put(snapshot("h1", 0))
        good = spool.put(snapshot("h1", 1))
    bad.write_bytes(damage(bad.read_bytes()))
    with Spool(tmp_path) as spool, caplog.at_level(logging.ERROR):
        assert spool.load(bad) is None
        assert spool.pending() == [good]
        assert spool.quarantined_total == 1
    moved = tmp_path / "quarantine" / bad.name
    assert moved.exists() and not bad.exists()
    assert "does not decode" in (tmp_path / "quarantine" / (bad.name + ".reason")).read_text()
    assert any("corrupt" in r.message for r in caplog.records)


def test_a_file_renamed_to_another_spool_id_is_quarantined(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        path = spool.put(snapshot("h1", 0))
    other = path.with_name(path.name[:13] + "0" * 32 + ".snap")
    path.rename(other)
    with Spool(tmp_path) as spool:
        assert spool.load(other) is None
        assert spool.pending() == []


def test_unfinished_writes_are_removed_and_odd_names_moved_aside(tmp_path: Path) -> None:
    (tmp_path / ".tmp-deadbeef").write_bytes(b"half a snapshot")
    (tmp_path / "notes.txt").write_text("left alone")
    (tmp_path / "garbage.snap").write_bytes(b"?")
    with Spool(tmp_path) as spool:
        assert spool.pending() == []
    assert not (tmp_path / ".tmp-deadbeef").exists()
    assert (tmp_path / "notes.txt").exists()
    assert (tmp_path / "quarantine" / "garbage.snap").exists()


def test_a_second_spool_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path), pytest.raises(LeaseHeld, match="in use by another recorder"):
        Spool(tmp_path)
    with Spool(tmp_path):  # released on close
        pass


def test_bad_spool_id_is_refused(tmp_path: Path) -> None:
    snap = snapshot("h1", 0)
    snap.metadata["spool_id"] = "../../etc"
    with Spool(tmp_path) as spool, pytest.raises(ValidationError, match="spool_id"):
        spool.put(snap)
