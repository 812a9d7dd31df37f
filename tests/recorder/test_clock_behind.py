"""A recorder whose clock is behind the stream never writes a second value for a stored
(metric, timestamp): it stamps from the stream's end, warns, and records the offset."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from snapcloud.backends import MemoryStore
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.recorder import Recorder, RecorderConfig, Spool, Uploader
from snapcloud.store import Repository
from tests.recorder.fakes import WALL0_NS, FakeClock, FakeCollector

HOST = "node-1"
MS = 10**6


def config(tmp_path: Path) -> RecorderConfig:
    return RecorderConfig(
        interval_s=0.1,
        window_s=1.0,
        fingerprint="bench",
        spool_dir=tmp_path / "spool",
        flush_timeout_s=5.0,
        lease_wait_s=5.0,
    )


def stored(objects: MemoryStore) -> list[ProfileSnapshot]:
    stream = Repository(objects).stream(HOST)
    return [stream.get(e.seq) for e in stream.entries()]


def test_a_recorder_whose_clock_is_behind_stamps_from_the_stream_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: the second run wrote 11 timestamps a second time, with other values, silently."""
    objects = MemoryStore()
    clock0 = FakeClock()
    first = Recorder(
        Repository(objects), HOST, [FakeCollector(clock0)], config(tmp_path), clock=clock0
    )
    first.run(duration=3.4)  # ticks at +0.4 .. +3.7 s, the last window ends at +3.8 s
    end = max(s.window_end for s in stored(objects))
    assert end == WALL0_NS + 3800 * MS
    # a restarted host whose clock is 1.15 s behind: its grid would start at +2.7 s
    clock = FakeClock(wall_offset_ns=2_650 * MS)
    collector = FakeCollector(clock)
    collector.calls = 1000  # other values than the first run's
    with caplog.at_level(logging.WARNING):
        Recorder(Repository(objects), HOST, [collector], config(tmp_path), clock=clock).run(
            duration=2.0
        )
    snaps = stored(objects)
    seen: Counter[tuple[str, int]] = Counter()
    for s in snaps:
        for m in s.metrics:
            seen.update((m.name, t) for t in m.timestamps.tolist())
    assert max(seen.values()) == 1, "a (metric, timestamp) stored twice"
    assert "behind the end of this host's stream" in caplog.text
    second = [s for s in snaps if s.window_start >= end]
    assert sum(int(s.metadata["samples"]) for s in second) == 20  # every tick of run 2 kept
    ticks = np.concatenate([s.metric("fake.tick").timestamps for s in second])
    assert int(ticks[0]) == end and bool(np.all(np.diff(ticks) == 100 * MS))
    offsets = [int(s.metadata["clock_offset_ns"]) for s in second]
    assert all(1_100 * MS <= o <= 1_200 * MS for o in offsets), offsets
    assert all("clock_offset_ns" not in s.metadata for s in snaps if s.window_end <= end)


def window(start_ms: int, n: int, value: float, sid: str) -> ProfileSnapshot:
    ts = WALL0_NS + (start_ms + np.arange(n) * 100) * MS
    return ProfileSnapshot(
        HOST,
        [MetricSeries("fake.tick", ts, np.full(n, value))],
        window_start=int(ts[0]),
        window_end=int(ts[-1]) + 100 * MS,
        metadata={"interval_ms": 100.0, "spool_id": sid},
    )


def test_the_uploader_restamps_a_spooled_window_over_the_stream_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store was unreachable when the run started, so the sampler could not know."""
    objects = MemoryStore()
    stream = Repository(objects).stream(HOST, create=True)
    stream.append(window(0, 10, 1.0, "a" * 32))  # [0, 1 s)
    spool = Spool(tmp_path / "spool")
    spool.put(window(550, 10, 2.0, "b" * 32))  # [0.55 s, 1.55 s): overlaps 0.45 s
    with caplog.at_level(logging.WARNING):
        up = Uploader(spool, Repository(objects).stream(HOST))
        up.run_once()
    assert "stamped 0.500 s later" in caplog.text and up.restamped == 1
    snaps = stored(objects)
    moved = snaps[-1]
    assert moved.window_start == WALL0_NS + 1050 * MS  # whole intervals: the grid is kept
    assert moved.metadata["clock_offset_ns"] == 500 * MS
    assert moved.metric("fake.tick").values.tolist() == [2.0] * 10
    assert len(spool) == 0


def test_a_crash_after_a_restamped_append_does_not_append_twice(tmp_path: Path) -> None:
    objects = MemoryStore()
    Repository(objects).stream(HOST, create=True).append(window(0, 10, 1.0, "a" * 32))
    spool = Spool(tmp_path / "spool")
    path = spool.put(window(550, 10, 2.0, "b" * 32))
    up = Uploader(spool, Repository(objects).stream(HOST))
    up.spool.remove = lambda p: None  # type: ignore[method-assign]  # died before removal
    up.run_once()
    assert path.exists()  # the restamped snapshot is what the spool holds now
    assert spool.load(path).window_start == WALL0_NS + 1050 * MS  # type: ignore[union-attr]
    spool.close()
    again = Uploader(Spool(tmp_path / "spool"), Repository(objects).stream(HOST))
    again.run_once()
    assert again.duplicates_skipped == 1 and len(stored(objects)) == 2
