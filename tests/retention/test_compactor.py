"""The compactor: tier transitions at the right ages, reads before/during/after, marks,
deletion order, dry runs, idempotence, the lease, orphans, storage per tier."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapcloud.backends import FileStore, MemoryStore, ObjectStore, S3Store
from snapcloud.codec import resolution_of
from snapcloud.errors import LeaseHeld, SnapshotNotFound
from snapcloud.index import segment_key
from snapcloud.layout import MARKS_PREFIX, mark_key
from snapcloud.models import SnapshotQuery
from snapcloud.retention import (
    COMPACTOR_LEASE_KEY,
    Compactor,
    DeletionMark,
    Lease,
    storage_by_tier,
)
from snapcloud.store import HostStream, Repository
from tests.retention.scenario import CONFIG, DAY, HOUR, T0, check_reads, write_host

HOST = "gpu-1"


@pytest.fixture(params=["memory", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "memory":
        yield MemoryStore()
    else:
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        yield S3Store(bucket, "fleet", endpoint_url=endpoint)


def _tiers(objects: ObjectStore) -> dict[str, int]:
    stream = HostStream(objects, HOST, CONFIG)
    out: dict[str, int] = {}
    for e in stream.entries():
        tier = e.key.split("/")[0]
        out[tier] = out.get(tier, 0) + 1
    return out


def _keys(objects: ObjectStore, prefix: str = "") -> set[str]:
    return {i.key for i in objects.list(prefix)}


def test_tiers_change_at_the_right_ages(objects: ObjectStore) -> None:
    """24 one-hour windows, groups of 4 hours: each transition happens exactly at its age."""
    originals = write_host(objects, HOST, 24)
    compactor = Compactor(objects, CONFIG)
    first_end = T0 + 4 * HOUR  # end of group 0 (seqs 0-3)

    compactor.run(first_end + 6 * HOUR - 1)
    assert _tiers(objects) == {"raw": 24}
    check_reads(objects, HOST, originals)

    report = compactor.run(first_end + 6 * HOUR)  # raw_max_age reached for group 0 only
    assert report.hosts[0].compressed == ["raw 0-3"]
    assert _tiers(objects) == {"compressed": 4, "raw": 20}
    assert _keys(objects, MARKS_PREFIX) == {mark_key(HOST, "raw", 0, 3)}
    check_reads(objects, HOST, originals)

    compactor.run(T0 + 24 * HOUR + 6 * HOUR)  # everything sealed is compressed...
    assert _tiers(objects) == {"compressed": 20, "raw": 4}  # ...but the last group stays raw
    assert len(_keys(objects, "raw/")) == 24 - 4  # group 0's raw objects deleted after the delay
    check_reads(objects, HOST, originals)

    # Day 0 (groups 0-20) is archived only once every group of the day is past 1 day.
    compactor.run(T0 + 20 * HOUR + DAY - 1)
    assert "archive" not in _tiers(objects)
    report = compactor.run(T0 + 20 * HOUR + DAY)
    assert report.hosts[0].archived == ["archive 0-19"]
    tiers = _tiers(objects)
    assert tiers["raw"] == 4 and tiers["archive"] == 2  # two fingerprints
    seen = check_reads(objects, HOST, originals, T0 + 20 * HOUR + DAY)
    assert seen["archive"] == set(range(20))

    compactor.run(T0 + 24 * HOUR + 2 * DAY)  # archive_max_age: the archive goes away
    assert _tiers(objects) == {"raw": 4}
    compactor.run(T0 + 24 * HOUR + 2 * DAY + HOUR)  # after the delay, deleted for good
    assert _keys(objects, "archive/") == set() and _keys(objects, "compressed/") == set()
    assert _keys(objects, "index/") == {segment_key(HOST, 20)}
    assert _keys(objects, MARKS_PREFIX) == set()
    check_reads(objects, HOST, originals)


def test_get_and_plan_see_every_tier(tmp_path: Path) -> None:
    objects = FileStore(tmp_path / "store")
    originals = write_host(objects, HOST, 24)
    Compactor(objects, CONFIG).run(T0 + 12 * HOUR + DAY)  # day 0 incomplete: compressed
    Compactor(objects, CONFIG).run(T0 + 20 * HOUR + DAY + HOUR)  # day 0 archived
    stream = HostStream(objects, HOST, CONFIG)
    with pytest.raises(SnapshotNotFound, match="no snapshot 3"):
        stream.get(3)  # archived: downsampled, reachable by time only
    assert stream.get(21) == originals[21]  # raw
    plan = stream.plan(SnapshotQuery(start_ns=T0 + 2 * HOUR, end_ns=T0 + 22 * HOUR))
    assert {e.key.split("/")[0] for e in plan} == {"archive", "raw"}
    parts = list(stream.query(SnapshotQuery(start_ns=T0 + 90 * 60 * 10**9, metrics=("util",))))
    archived = [p for p in parts if resolution_of(p) is not None]
    assert {resolution_of(p) for p in archived} == {60 * 10**9}
    for p in archived:
        assert {m.name for m in p.metrics} == {
            f"util:{a}" for a in ("count", "sum", "min", "max", "last")
        }
        assert p.metrics[0].timestamps.min() >= T0 + 90 * 60 * 10**9
    st = stream.stats()
    assert st.snapshots == 2 + 4  # two archive frames (one per fingerprint) + the raw group
    assert st.segments == 2 and st.samples < sum(s.sample_count for s in originals)
    assert [(t.tier, t.first_seq, t.last_seq) for t in stream.tier_segments()] == [
        ("archive", 0, 19)
    ]
    assert st.stored_bytes == sum(i.size for i in objects.list("raw/")) + sum(
        i.size for i in objects.list("archive/")
    )


def test_compressed_reads_are_one_request(tmp_path: Path) -> None:
    from snapcloud.backends import CountingStore

    objects = CountingStore(MemoryStore())
    originals = write_host(objects, HOST, 12)
    Compactor(objects, CONFIG).run(T0 + 8 * HOUR + 6 * HOUR)
    stream = HostStream(objects, HOST, CONFIG)
    stream.entry(0)
    objects.reset()
    assert stream.get(1) == originals[1]
    assert objects.counts().get("get") == 1
    assert [stream.get(s) for s in (0, 2, 3, 4)] == [originals[s] for s in (0, 2, 3, 4)]
    assert objects.counts().get("get") == 3  # cached group 0, then group 1: segment + object


def test_marks_are_honoured_by_readers() -> None:
    objects = MemoryStore()
    originals = write_host(objects, HOST, 12)
    Compactor(objects, CONFIG).run(T0 + 8 * HOUR + 6 * HOUR)  # groups 0 and 1 compressed
    assert _tiers(objects) == {"compressed": 8, "raw": 4}
    # An expiry mark on compressed group 1: readers drop it at once, before any deletion.
    key = mark_key(HOST, "compressed", 4, 7)
    mark = DeletionMark(
        host=HOST,
        tier="compressed",
        first_seq=4,
        last_seq=7,
        reason="expired",
        created_ns=0,
        delete_after_ns=0,
    )
    objects.put(key, mark.to_bytes())
    assert _tiers(objects) == {"compressed": 4, "raw": 4}
    seen = check_reads(objects, HOST, originals)
    assert seen["full"] == {0, 1, 2, 3, 8, 9, 10, 11}
    objects.delete(key)
    assert _tiers(objects) == {"compressed": 8, "raw": 4}


def test_hard_delete_order_is_index_then_data_then_mark() -> None:
    objects = MemoryStore()
    write_host(objects, HOST, 12)
    Compactor(objects, CONFIG).run(T0 + 14 * HOUR)
    steps: list[str] = []
    Compactor(objects, CONFIG, on_step=lambda n, label: steps.append(label)).run(T0 + 15 * HOUR)
    deletes = [s.removeprefix("delete ") for s in steps if s.startswith("delete ")]
    assert deletes
    for base in (0, 4):
        mine = [
            d
            for d in deletes
            if f"/{base:012d}" in d
            or f"raw-{base:012d}" in d
            or (d.startswith("raw/") and base <= int(d.rsplit("/", 1)[1][:12]) < base + 4)
        ]
        kinds = [
            "index" if d.startswith("index/") else "mark" if d.startswith("marks/") else "data"
            for d in mine
        ]
        assert kinds == ["index"] + ["data"] * 4 + ["mark"], mine


def test_dry_run_plans_exactly_what_a_run_does() -> None:
    objects = MemoryStore()
    write_host(objects, HOST, 24)
    write_host(objects, "gpu-2", 10, seed=3)
    Compactor(objects, CONFIG).run(T0 + 18 * HOUR)
    now = T0 + 20 * HOUR + DAY
    before = _keys(objects)
    plan = Compactor(objects, CONFIG).run(now, dry_run=True)
    assert _keys(objects) == before  # nothing written
    done = Compactor(objects, CONFIG).run(now)
    assert plan.to_dict()["tiers"] == done.to_dict()["tiers"]
    assert plan.requests == done.requests
    for p, d in zip(plan.hosts, done.hosts, strict=True):
        assert (p.compressed, p.archived, p.expired) == (d.compressed, d.archived, d.expired)
    assert plan.totals()["archive"].written_objects == 4  # day 0 of each host: object + index


def test_rerun_changes_nothing() -> None:
    objects = MemoryStore()
    write_host(objects, HOST, 24)
    compactor = Compactor(objects, CONFIG)
    compactor.run(T0 + 20 * HOUR + DAY)
    snapshot = {i.key: objects.get(i.key).data for i in objects.list("") if "leases" not in i.key}
    again = compactor.run(T0 + 20 * HOUR + DAY)
    assert again.requests.get("put", 0) == 0 and again.requests.get("delete", 0) == 0
    assert {
        i.key: objects.get(i.key).data for i in objects.list("") if "leases" not in i.key
    } == snapshot


def test_second_compactor_is_refused_by_the_lease() -> None:
    objects = MemoryStore()
    write_host(objects, HOST, 8)
    clock = [1000.0]
    holder = Lease(objects, COMPACTOR_LEASE_KEY, "other", ttl_s=60, clock=lambda: clock[0])
    holder.acquire()
    compactor = Compactor(objects, CONFIG, clock=lambda: clock[0])
    with pytest.raises(LeaseHeld, match="held by other"):
        compactor.run(T0 + DAY)
    assert _keys(objects, "compressed/") == set()
    clock[0] += 61  # the holder died: its lease expires and is taken over
    compactor.run(T0 + DAY)
    assert _keys(objects, "compressed/")
    with pytest.raises(LeaseHeld):
        holder.renew()  # the old holder finds out instead of overwriting
    holder.release()  # a lost lease is left alone
    compactor.run(T0 + DAY)  # released by the run: free again


def test_lease_is_renewed_during_a_long_run() -> None:
    objects = MemoryStore()
    write_host(objects, HOST, 16)
    clock = [0.0]

    def tick(n: int, label: str) -> None:
        clock[0] += 30  # each step takes 30 s of a 60 s lease
        got = json.loads(objects.get(COMPACTOR_LEASE_KEY).data)
        assert got["expires_at"] > clock[0], got  # renewed: never expired mid-run

    Compactor(objects, CONFIG, lease_ttl_s=60, clock=lambda: clock[0], on_step=tick).run(T0 + DAY)
    rival = Lease(objects, COMPACTOR_LEASE_KEY, "rival", ttl_s=60, clock=lambda: clock[0])
    rival.acquire()  # released at the end


def test_orphans_are_collected_after_their_age() -> None:
    objects = MemoryStore()
    write_host(objects, HOST, 8)
    stray_raw = "raw/gpu-1/2026/01/01/000000000002.d000000000001.snap"  # seq 2, wrong base
    inflight = "raw/gpu-1/2026/01/01/000000000008.k.snap"  # the next append, mid-flight
    # a compaction of seqs 1-2 that died before its index: raw group 0 serves them
    stray_tier = "compressed/gpu-1/2026/01/01/000000000001-000000000002.snapt"
    # seqs no index serves: maybe the only copy of acknowledged data, never collected
    lost_tier = "compressed/gpu-1/2026/01/01/000000000040-000000000043.snapt"
    for key in (stray_raw, inflight, stray_tier, lost_tier):
        objects.put(key, b"partial")
    compactor = Compactor(objects, CONFIG)
    report = compactor.run(T0 + 9 * HOUR)
    assert report.hosts[0].orphans_marked == 2
    orphan_marks = [k for k in _keys(objects, MARKS_PREFIX) if "orphans-" in k]
    assert len(orphan_marks) == 1
    compactor.run(T0 + 9 * HOUR + 59 * 60 * 10**9)  # not yet an hour
    assert stray_raw in _keys(objects)
    report = compactor.run(T0 + 10 * HOUR)
    assert report.hosts[0].orphans_deleted == 2
    keys = _keys(objects)
    assert stray_raw not in keys and stray_tier not in keys and inflight in keys
    assert lost_tier in keys
    assert not [k for k in keys if "orphans-" in k]


def test_concurrent_reader_never_misses_a_snapshot() -> None:
    objects = MemoryStore()
    originals = write_host(objects, HOST, 32)
    errors: list[BaseException] = []
    stop = threading.Event()
    rounds = [0]

    def reader() -> None:
        try:
            while not stop.is_set():
                seen = check_reads(objects, HOST, originals)
                assert seen["full"] == set(range(32)), sorted(set(range(32)) - seen["full"])
                rounds[0] += 1
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        compactor = Compactor(objects, CONFIG)
        for h in range(10, 40, 2):  # a group compressed per run, the previous marks deleted
            compactor.run(T0 + h * HOUR)
            compactor.run(T0 + h * HOUR + HOUR)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[0]
    assert rounds[0] > 0
    assert _tiers(objects) == {"compressed": 28, "raw": 4}


def test_storage_by_tier_counts_real_objects() -> None:
    objects = MemoryStore()
    write_host(objects, HOST, 12)
    Compactor(objects, CONFIG).run(T0 + 14 * HOUR)
    rows = {(r.host, r.tier): r for r in storage_by_tier(objects)}
    assert rows[(HOST, "raw")].objects == 12  # deleted only after the delay
    assert rows[(HOST, "compressed")].objects == 2 and rows[(HOST, "compressed")].index_objects == 2
    assert rows[(HOST, "marks")].objects == 2
    assert rows[(HOST, "compressed")].bytes == sum(i.size for i in objects.list("compressed/"))
    Compactor(objects, CONFIG).run(T0 + 15 * HOUR)
    rows = {(r.host, r.tier): r for r in storage_by_tier(objects, [HOST])}
    assert rows[(HOST, "raw")].objects == 4 and rows[(HOST, "raw")].index_objects == 1
    assert rows[(HOST, "marks")].objects == 0


def test_repository_finds_a_host_and_its_next_seq_across_tiers() -> None:
    objects = MemoryStore()
    write_host(objects, HOST, 8)
    Compactor(objects, CONFIG).run(T0 + 12 * HOUR)
    # Even with the raw tier gone (e.g. the lifecycle safety net), seqs are never reused.
    for info in list(objects.list(f"index/{HOST}/raw/")):
        objects.delete(info.key)
    stream = Repository(objects, CONFIG).stream(HOST)
    assert stream.next_seq == 4


def test_a_lease_left_by_a_dead_compactor_on_this_machine_is_taken_at_once() -> None:
    """A SIGKILLed compactor no longer blocks the next run for its whole TTL; a live
    holder (or one on another machine) still does."""
    objects = MemoryStore()
    originals = write_host(objects, HOST, 16)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    Lease(objects, COMPACTOR_LEASE_KEY, f"{here}:{dead.pid}:x", ttl_s=600).acquire()
    Compactor(objects, CONFIG).run(T0 + 12 * HOUR)
    check_reads(objects, HOST, originals)
    for owner in (f"{here}:{os.getppid()}:x", f"other-machine:{dead.pid}:x"):
        objects.delete(COMPACTOR_LEASE_KEY)
        Lease(objects, COMPACTOR_LEASE_KEY, owner, ttl_s=600).acquire()
        with pytest.raises(LeaseHeld):
            Compactor(objects, CONFIG).run(T0 + 12 * HOUR)
