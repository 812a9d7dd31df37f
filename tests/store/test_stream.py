"""HostStream on every backend: append, get, query, stats, reopen, repair."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from snapcloud.backends import CountingStore, FileStore, MemoryStore, ObjectStore, S3Store
from snapcloud.errors import (
    ChecksumMismatch,
    ConflictError,
    CorruptError,
    HostNotFound,
    MemoryExceeded,
    ObjectNotFound,
    SnapshotNotFound,
    ValidationError,
)
from snapcloud.index import data_key, segment_key
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig, SnapshotQuery
from snapcloud.store import HostStream, Repository
from snapcloud.synth import host_snapshots

CONFIG = SnapshotConfig(keyframe_interval=4)


@pytest.fixture(params=["memory", "file", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "file":
        yield FileStore(tmp_path / "store")
    else:
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        yield S3Store(bucket, "prefix", endpoint_url=endpoint)


@pytest.fixture(scope="module")
def snaps() -> list[ProfileSnapshot]:
    return host_snapshots(0, 10)


def test_append_get_round_trip(objects: ObjectStore, snaps: list[ProfileSnapshot]) -> None:
    stream = HostStream(objects, snaps[0].host, CONFIG)
    entries = [stream.append(s) for s in snaps]
    assert [e.seq for e in entries] == list(range(10))
    assert [e.kind for e in entries] == list("kdddkdddkd")
    assert [e.base for e in entries] == [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]
    for i, s in enumerate(snaps):
        assert stream.get(i) == s.with_seq(i)
    # A new store object (as a new process would) sees the same.
    again = HostStream(objects, snaps[0].host, CONFIG)
    assert again.next_seq == 10
    assert again.get(6) == snaps[6].with_seq(6)


def test_append_costs_two_requests_and_get_at_most_two_reads(snaps: list[ProfileSnapshot]) -> None:
    counting = CountingStore(MemoryStore())
    stream = HostStream(counting, snaps[0].host, CONFIG)
    stream.append(snaps[0])  # the first append also lists the (empty) index
    for s in snaps[1:]:
        counting.reset()
        stream.append(s)
        assert counting.counts().get("put", 0) == 2
        assert sum(counting.counts().values()) == 2
    fresh = HostStream(counting, snaps[0].host, CONFIG)
    fresh.entry(6)  # loads the listing and segment
    counting.reset()
    fresh.get(6)
    assert counting.counts().get("get", 0) == 2  # keyframe 4 + delta 6
    counting.reset()
    fresh.get(7)
    assert counting.counts().get("get", 0) == 1  # keyframe cached


def test_query_trims_range_and_metrics(objects: ObjectStore, snaps: list[ProfileSnapshot]) -> None:
    stream = HostStream(objects, snaps[0].host, CONFIG)
    for s in snaps:
        stream.append(s)
    start = snaps[2].window_start + 30 * 10**9
    end = snaps[5].window_start + 10 * 10**9
    q = SnapshotQuery(start_ns=start, end_ns=end, metrics=("gpu.0.power_avg_mw", "cpu.util"))
    got = list(stream.query(q))
    assert [s.seq for s in got] == [2, 3, 4, 5]
    for s in got:
        assert {m.name for m in s.metrics} == {"gpu.0.power_avg_mw", "cpu.util"}
        for m in s.metrics:
            assert m.timestamps.min() >= start and m.timestamps.max() < end
    expected = sum(
        int(((m.timestamps >= start) & (m.timestamps < end)).sum())
        for s in snaps
        for m in s.metrics
        if m.name in ("gpu.0.power_avg_mw", "cpu.util")
    )
    assert sum(s.sample_count for s in got) == expected
    assert [s.seq for s in stream.query(SnapshotQuery(fingerprint="nope"))] == []
    assert len(list(stream.query(SnapshotQuery(limit=3)))) == 3


def test_memory_limit_raises_instead_of_truncating(snaps: list[ProfileSnapshot]) -> None:
    stream = HostStream(
        MemoryStore(), snaps[0].host, SnapshotConfig(max_query_memory_bytes=3 * snaps[0].raw_bytes)
    )
    for s in snaps:
        stream.append(s)
    with pytest.raises(MemoryExceeded, match="over the limit"):
        stream.query_all()
    assert len(stream.query_all(SnapshotQuery(limit=3))) == 3
    assert len(list(stream.query())) == 10  # streaming holds one at a time
    tiny = HostStream(stream.objects, snaps[0].host, SnapshotConfig(max_query_memory_bytes=100))
    with pytest.raises(MemoryExceeded):
        next(tiny.query())


def test_stats_are_real_bytes(snaps: list[ProfileSnapshot]) -> None:
    objects = MemoryStore()
    stream = HostStream(objects, snaps[0].host, CONFIG)
    for s in snaps:
        stream.append(s)
    st = stream.stats()
    stored = sum(o.size for o in objects.list("raw/"))
    assert st.stored_bytes == stored
    assert st.raw_bytes == 16 * sum(s.sample_count for s in snaps)
    assert (st.snapshots, st.keyframes, st.deltas, st.segments) == (10, 3, 7, 3)
    assert st.ratio < 0.15


def test_errors_are_typed(snaps: list[ProfileSnapshot]) -> None:
    objects = MemoryStore()
    repo = Repository(objects, CONFIG)
    with pytest.raises(HostNotFound):
        repo.stream("nobody")
    stream = repo.stream(snaps[0].host, create=True)
    stream.append(snaps[0])
    with pytest.raises(SnapshotNotFound):
        stream.get(5)
    with pytest.raises(ValidationError):
        stream.append(ProfileSnapshot("other-host", [], window_start=0, window_end=1))
    with pytest.raises(ValidationError):
        repo.stream("../etc")


def test_corrupt_object_is_detected_and_nothing_else_changes(snaps: list[ProfileSnapshot]) -> None:
    objects = MemoryStore()
    stream = HostStream(objects, snaps[0].host, CONFIG)
    entries = [stream.append(s) for s in snaps[:3]]
    data = bytearray(objects.get(entries[1].key).data)
    data[60] ^= 0xFF
    objects.put(entries[1].key, bytes(data))
    fresh = HostStream(objects, snaps[0].host, CONFIG)
    with pytest.raises(ChecksumMismatch):
        fresh.get(1)
    assert fresh.get(2) == snaps[2].with_seq(2)
    objects.delete(entries[2].key)
    with pytest.raises(ObjectNotFound, match="names missing object"):
        fresh.get(2)


def test_two_writers_conflict_instead_of_corrupting(snaps: list[ProfileSnapshot]) -> None:
    objects = MemoryStore()
    a = HostStream(objects, snaps[0].host, CONFIG)
    b = HostStream(objects, snaps[0].host, CONFIG)
    a.append(snaps[0])
    b.append(snaps[1])  # b reads a's state lazily: it appends seq 1
    with pytest.raises(ConflictError, match="another writer"):
        a.append(snaps[2])  # a still thinks seq 1 is next: b's object is not replaced
    assert a.get(1) == snaps[1].with_seq(1)
    a.append(snaps[2])  # after the refresh a continues at seq 2
    assert b.get(2) == snaps[2].with_seq(2)  # b's reader rereads the index and sees a's append
    assert b.append(snaps[3]).seq == 3
    with pytest.raises(ConflictError):
        a.append(snaps[4])  # a's view is stale again
    assert [a.get(i) for i in range(4)] == [s.with_seq(i) for i, s in enumerate(snaps[:4])]
    assert HostStream(objects, snaps[0].host, CONFIG).next_seq == 4


def test_retry_after_lost_reply_is_not_a_conflict(snaps: list[ProfileSnapshot]) -> None:
    objects = MemoryStore()
    stream = HostStream(objects, snaps[0].host, CONFIG)
    stream.append(snaps[0])
    stream.append(snaps[1])
    # Simulate: seg write for seq 1 landed, but we never saw the reply (stale etag).
    stream._etags[0] = "stale"
    stream._segments[0].entries.pop()
    entry = stream.append(snaps[1])
    assert entry.seq == 1
    assert stream.next_seq == 2


def test_verify_and_repair_rebuild_the_index(snaps: list[ProfileSnapshot]) -> None:
    objects = MemoryStore()
    repo = Repository(objects, CONFIG)
    stream = repo.stream(snaps[0].host, create=True)
    for s in snaps:
        stream.append(s)
    (report,) = repo.verify()
    assert report.ok and report.objects == 10 and report.entries == 10 and not report.orphans
    # Lose one segment, damage another.
    objects.delete(segment_key(stream.host, 4))
    bad = bytearray(objects.get(segment_key(stream.host, 0)).data)
    bad[40] ^= 1
    objects.put(segment_key(stream.host, 0), bytes(bad))
    (report,) = repo.verify()
    assert not report.ok
    (report,) = repo.verify(repair=True)
    assert report.repaired_segments == 3
    (report,) = repo.verify()
    assert report.ok and report.entries == 10
    fresh = HostStream(objects, stream.host, CONFIG)
    for i, s in enumerate(snaps):
        assert fresh.get(i) == s.with_seq(i)


def test_orphan_object_is_not_an_error_and_is_never_overwritten(
    snaps: list[ProfileSnapshot],
) -> None:
    objects = MemoryStore()
    repo = Repository(objects, CONFIG)
    stream = HostStream(objects, snaps[0].host, CONFIG)
    stream.append(snaps[0])
    # An append of another snapshot as seq 1 that died between its object and its segment:
    other = snaps[2].with_seq(1)
    key = data_key(snaps[0].host, 1, 0, other.window_start, other.checksum)
    objects.put(key, b"partial garbage")
    fresh = HostStream(objects, snaps[0].host, CONFIG)
    assert fresh.next_seq == 1
    entry = fresh.append(snaps[1])
    assert entry.key != key and objects.get(key).data == b"partial garbage"  # left alone
    assert fresh.get(1) == snaps[1].with_seq(1)
    (report,) = repo.verify()
    # unreadable bytes are reported by key, indexed or not (verify finds any changed byte)
    assert [p.key for p in report.problems] == [key]


def test_a_delta_whose_keyframe_is_gone_is_an_orphan_when_unindexed(
    snaps: list[ProfileSnapshot],
) -> None:
    """What a lifecycle rule or an operator can leave: a group's segment and keyframe
    deleted, its deltas still there. Garbage to collect, not damage."""
    objects = MemoryStore()
    repo = Repository(objects, CONFIG)
    stream = repo.stream(snaps[0].host, create=True)
    entries = [stream.append(s) for s in snaps[:6]]
    objects.delete(segment_key(stream.host, 0))
    objects.delete(entries[0].key)
    (report,) = repo.verify()
    assert report.ok, report.problems
    assert report.orphans == sorted(e.key for e in entries[1:4])
    # the same deltas while an index entry still names them: damage, reported by key
    objects.put(segment_key(stream.host, 0), b"{}")
    (report,) = repo.verify()
    assert not report.ok


def test_reopen_in_a_new_process(tmp_path: Path, snaps: list[ProfileSnapshot]) -> None:
    root = tmp_path / "store"
    stream = HostStream(FileStore(root), snaps[0].host, CONFIG)
    for s in snaps[:5]:
        stream.append(s)
    code = f"""
import sys
from snapcloud.backends import FileStore
from snapcloud.store import HostStream
from snapcloud.models import SnapshotConfig
from snapcloud.synth import host_snapshots
snaps = host_snapshots(0, 10)
config = SnapshotConfig(keyframe_interval=4)
s = HostStream(FileStore({str(root)!r}), snaps[0].host, config)
assert s.next_seq == 5, s.next_seq
for i in range(5):
    assert s.get(i) == snaps[i].with_seq(i), i
for snap in snaps[5:]:
    s.append(snap)
print("ok", s.next_seq)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ok", "10"]
    fresh = HostStream(FileStore(root), snaps[0].host, CONFIG)
    assert fresh.get(9) == snaps[9].with_seq(9)


def test_irregular_and_changing_metric_sets(objects: ObjectStore) -> None:
    rng = np.random.default_rng(0)
    stream = HostStream(objects, "h-irr", CONFIG)
    originals = []
    for i in range(7):
        names = [f"m{j}" for j in range(i % 4 + 1)]
        ts = np.cumsum(rng.integers(1, 10**9, 20)) + i * 10**12
        ms = [MetricSeries(n, ts, rng.normal(size=20)) for n in names]
        snap = ProfileSnapshot("h-irr", ms, fingerprint=f"f{i % 2}")
        originals.append(snap)
        stream.append(snap)
    for i, s in enumerate(originals):
        assert stream.get(i) == s.with_seq(i)
    assert [s.seq for s in stream.query(SnapshotQuery(fingerprint="f1"))] == [1, 3, 5]
    assert [s.seq for s in stream.query(SnapshotQuery(metrics=("m3",)))] == [3]


def test_corrupt_segment_is_a_typed_error(snaps: list[ProfileSnapshot]) -> None:
    objects = MemoryStore()
    stream = HostStream(objects, snaps[0].host, CONFIG)
    stream.append(snaps[0])
    objects.put(segment_key(stream.host, 0), b'{"version": 1, "crc32c": 0}')
    with pytest.raises(CorruptError):
        HostStream(objects, snaps[0].host, CONFIG).get(0)
