"""The recorder end to end on a fake clock: windows stored once, lease enforced, spool bounded."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from snapcloud.backends import MemoryStore
from snapcloud.errors import HostNotFound, LeaseHeld, ValidationError
from snapcloud.models import ProfileSnapshot
from snapcloud.recorder import (
    Fingerprinter,
    Lease,
    Recorder,
    RecorderConfig,
    SealedWindow,
    Spool,
    lease_key,
)
from snapcloud.store import Repository
from tests.recorder.fakes import FakeClock, FakeCollector, FakeProc, FakePsutil, FlakyStore

HOST = "node-1"


def config(tmp_path: Path, **kw: object) -> RecorderConfig:
    base: dict[str, object] = {
        "interval_s": 0.1,
        "window_s": 1.0,
        "fingerprint": "bench",
        "spool_dir": tmp_path / "spool",
        "flush_timeout_s": 5.0,
        "lease_wait_s": 5.0,
    }
    base.update(kw)
    return RecorderConfig(**base)  # type: ignore[arg-type]


def stored(objects: MemoryStore | FlakyStore) -> list[ProfileSnapshot]:
    stream = Repository(objects).stream(HOST)
    return [stream.get(e.seq) for e in stream.entries()]


def test_records_every_window_once_with_its_facts(tmp_path: Path) -> None:
    objects, clock = MemoryStore(), FakeClock()
    sealed: list[SealedWindow] = []
    rec = Recorder(
        Repository(objects),
        HOST,
        [FakeCollector(clock)],
        config(tmp_path, labels={"team": "ml"}),
        clock=clock,
        on_window=sealed.append,
    )
    summary = rec.run(duration=3.4)
    snaps = stored(objects)
    assert len(snaps) == len(sealed) == summary.windows == 4
    assert [s.metadata["spool_id"] for s in snaps] == [
        w.snapshot.metadata["spool_id"] for w in sealed
    ]
    ts = np.concatenate([s.metric("fake.tick").timestamps for s in snaps])
    assert np.all(np.diff(ts) == 100_000_000) and ts.size == summary.ticks == 34
    last = snaps[-1]
    assert last.labels == {"fake.model": "F-1", "team": "ml"}
    assert last.fingerprint == "bench"
    assert last.metadata["partial"] is True and snaps[1].metadata["partial"] is False
    assert snaps[1].metadata["samples"] == 10
    for key in ("late_ticks", "skipped_ticks", "spool_dropped", "interval_ms", "max_late_ms"):
        assert key in last.metadata
    assert summary.uploaded == 4 and summary.pending == 0 and summary.flushed
    assert summary.lease == "waiting"  # released at the end
    assert objects.head(lease_key(HOST)) is None
    assert list((tmp_path / "spool").glob("*.snap")) == []


def test_fingerprint_is_derived_when_not_given(tmp_path: Path) -> None:
    objects, clock = MemoryStore(), FakeClock()
    ps = FakePsutil([FakeProc(1, "trainer", [50.0]), FakeProc(2, "sshd", [0.0])])
    rec = Recorder(
        Repository(objects),
        HOST,
        [FakeCollector(clock)],
        config(tmp_path, fingerprint=None),
        clock=clock,
        fingerprinter=Fingerprinter(ps, exclude_pids=()),
    )
    rec.run(duration=1.0)
    assert {s.fingerprint for s in stored(objects)} == {"trainer"}


def test_a_second_recorder_is_refused_before_it_samples(tmp_path: Path) -> None:
    objects, clock = MemoryStore(), FakeClock()
    Lease(objects, lease_key(HOST), "other-box:77:abc").acquire()
    coll = FakeCollector(clock)
    rec = Recorder(Repository(objects), HOST, [coll], config(tmp_path), clock=clock)
    with pytest.raises(LeaseHeld) as caught:
        rec.run(duration=5.0)
    msg = str(caught.value)
    assert "already being recorded" in msg and "other-box:77:abc" in msg and "until" in msg
    assert coll.calls == 0
    assert json.loads(objects.get(lease_key(HOST)).data)["owner"] == "other-box:77:abc"
    Spool(tmp_path / "spool").close()  # the spool lock was released


def test_the_lease_of_a_dead_recorder_on_this_machine_is_taken_over(tmp_path: Path) -> None:
    objects, clock = MemoryStore(), FakeClock()
    dead_pid = 2**22 + 12345  # above any pid_max: never a live process
    Lease(objects, lease_key(HOST), f"{socket.gethostname()}:{dead_pid}:abc").acquire()
    rec = Recorder(Repository(objects), HOST, [FakeCollector(clock)], config(tmp_path), clock=clock)
    assert rec.run(duration=1.0).uploaded >= 1


def test_a_live_holder_on_this_machine_is_not_taken_over(tmp_path: Path) -> None:
    objects, clock = MemoryStore(), FakeClock()
    Lease(objects, lease_key(HOST), f"{socket.gethostname()}:{os.getppid()}:abc").acquire()
    rec = Recorder(Repository(objects), HOST, [FakeCollector(clock)], config(tmp_path), clock=clock)
    with pytest.raises(LeaseHeld):
        rec.run(duration=1.0)


def test_losing_the_lease_stops_appending_and_says_so(tmp_path: Path) -> None:
    objects, clock = MemoryStore(), FakeClock()
    stolen_at: list[int] = []
    rec: Recorder

    def steal(k: int) -> None:
        if k == 25:
            # Another writer took the stream (our lease had lapsed while we were cut off).
            objects.put(
                lease_key(HOST),
                json.dumps({"owner": "usurper", "acquired_at": 0, "expires_at": 4e9}).encode(),
            )
            stolen_at.append(clock.time_ns())
            assert rec.keeper.step() is None  # the keeper's next renewal finds out

    coll = FakeCollector(clock, on_collect=steal)
    rec = Recorder(Repository(objects), HOST, [coll], config(tmp_path), clock=clock)
    with pytest.raises(LeaseHeld, match=r"usurper.*stopped recording host 'node-1'"):
        rec.run(duration=10.0)
    assert coll.calls == 26, "sampling stopped at once"
    try:
        kept = stored(objects)
    except HostNotFound:  # the uploader thread had not sent a window before the steal
        kept = []
    for snap in kept:  # nothing sealed after the steal was appended
        assert snap.window_end <= stolen_at[0]
    with Spool(tmp_path / "spool") as spool:  # the partial window is kept, not lost
        assert len(spool) >= 1
    assert json.loads(objects.get(lease_key(HOST)).data)["owner"] == "usurper"


def test_store_down_then_restart_uploads_everything_exactly_once(tmp_path: Path) -> None:
    flaky, clock = FlakyStore(), FakeClock()
    flaky.failing = 10**9
    flaky.fail_keys = lambda key: not key.startswith("marks/")  # lease works, data does not
    cfg = config(tmp_path, flush_timeout_s=0.0)
    first = Recorder(Repository(flaky), HOST, [FakeCollector(clock)], cfg, clock=clock)
    s1 = first.run(duration=3.0)
    assert s1.uploaded == 0 and s1.pending == s1.windows == 4 and not s1.flushed
    assert objects_under(flaky, "raw/") == 0

    flaky.failing = 0
    second = Recorder(
        Repository(flaky), HOST, [FakeCollector(clock)], config(tmp_path), clock=clock
    )
    s2 = second.run(duration=2.0)
    assert s2.pending == 0 and s2.uploaded == s1.windows + s2.windows
    snaps = stored(flaky)
    assert len(snaps) == s1.windows + s2.windows
    assert len({s.metadata["spool_id"] for s in snaps}) == len(snaps)
    starts = [s.window_start for s in snaps]
    assert starts == sorted(starts)


def objects_under(store: FlakyStore, prefix: str) -> int:
    return len(list(store.inner.list(prefix)))


def test_spool_bound_drops_the_oldest_and_the_next_window_says_so(tmp_path: Path) -> None:
    flaky, clock = FlakyStore(), FakeClock()
    flaky.failing = 10**9
    flaky.fail_keys = lambda key: not key.startswith("marks/")
    cfg = config(tmp_path, flush_timeout_s=0.0, spool_max_bytes=2500)
    rec = Recorder(Repository(flaky), HOST, [FakeCollector(clock)], cfg, clock=clock)
    summary = rec.run(duration=8.0)
    assert summary.dropped > 0
    assert summary.pending + summary.dropped == summary.windows
    with Spool(tmp_path / "spool") as spool:
        assert spool.size_bytes <= 2500 + max(p.stat().st_size for p in spool.pending())
        kept = [spool.load(p) for p in spool.pending()]
    meta = [s.metadata for s in kept if s is not None]
    totals = [int(str(m["spool_dropped_total"])) for m in meta]
    news = [int(str(m["spool_dropped"])) for m in meta]
    assert sum(news) >= 1, "a window after a drop reports it"
    assert totals == sorted(totals) and totals[-1] <= summary.dropped
    # each window reports the drops since the one before it
    assert all(t1 - t0 == n for t0, t1, n in zip(totals, totals[1:], news[1:], strict=False))


def test_stop_event_seals_the_partial_window_and_flushes(tmp_path: Path) -> None:
    objects, clock = MemoryStore(), FakeClock()
    stop = threading.Event()
    coll = FakeCollector(clock, on_collect=lambda k: stop.set() if k == 14 else None)
    rec = Recorder(Repository(objects), HOST, [coll], config(tmp_path), clock=clock)
    summary = rec.run(stop_event=stop)
    snaps = stored(objects)
    assert summary.flushed and len(snaps) == 2
    assert snaps[-1].metadata["partial"] is True
    assert sum(len(s.metric("fake.tick")) for s in snaps) == 15


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="interval_s"):
        RecorderConfig(interval_s=0)
    with pytest.raises(ValidationError, match="fingerprint"):
        RecorderConfig(fingerprint="a\nb")
    with pytest.raises(ValidationError):
        RecorderConfig(labels={"bad/key": "x"})
