"""The uploader: ordered delivery through outages, exactly once across crashes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from snapcloud.backends import MemoryStore
from snapcloud.recorder import Backoff, Spool, Uploader
from snapcloud.store import HostStream
from tests.recorder.fakes import FlakyStore, snapshot

HOST = "node-1"


def drain(up: Uploader, limit: int = 1000) -> list[float]:
    """Run the uploader's steps without a thread or real waits; return the waits it asked for."""
    waits: list[float] = []
    for _ in range(limit):
        delay = up.run_once()
        if delay is None:
            return waits
        if delay:
            waits.append(delay)
    raise AssertionError("uploader never went idle")


def stored_windows(stream: HostStream) -> list[object]:
    stream.refresh()
    return [stream.get(e.seq).metadata["window"] for e in stream.entries()]


def test_backs_off_while_the_store_fails_then_delivers_everything_in_order(
    tmp_path: Path,
) -> None:
    flaky = FlakyStore()
    stream = HostStream(flaky, HOST)
    with Spool(tmp_path) as spool:
        for i in range(5):
            spool.put(snapshot(HOST, i))
        up = Uploader(spool, stream, backoff=Backoff(0.5, 4.0, random.Random(3)))
        flaky.failing = 6  # S3 down for six requests
        waits = drain(up)
        assert len(waits) == 6
        for attempt, w in enumerate(waits):  # exponential, jittered, capped
            top = min(4.0, 0.5 * 2**attempt)
            assert top / 2 <= w <= top
        assert stored_windows(stream) == [0, 1, 2, 3, 4]
        assert len(spool) == 0 and up.uploaded == 5
        assert up.errors == 6 and up.failures == 0
        assert "injected failure" in (up.last_error or "")


def test_a_restarted_uploader_sends_what_its_predecessor_left(tmp_path: Path) -> None:
    objects = MemoryStore()
    with Spool(tmp_path) as spool:  # the first run: store unreachable, everything spooled
        for i in range(3):
            spool.put(snapshot(HOST, i))
    with Spool(tmp_path) as spool:  # the next run
        up = Uploader(spool, HostStream(objects, HOST))
        spool.put(snapshot(HOST, 3))
        drain(up)
        assert len(spool) == 0
    assert stored_windows(HostStream(objects, HOST)) == [0, 1, 2, 3]


def test_no_double_append_after_a_crash_between_accept_and_removal(tmp_path: Path) -> None:
    objects = MemoryStore()
    stream = HostStream(objects, HOST)
    with Spool(tmp_path) as spool:
        paths = [spool.put(snapshot(HOST, i)) for i in range(3)]
        # The first run stored window 0 and died before removing its spool file.
        first = spool.load(paths[0])
        assert first is not None
        stream.append(first)
    with Spool(tmp_path) as spool:
        up = Uploader(spool, HostStream(objects, HOST))
        drain(up)
        assert up.duplicates_skipped == 1 and up.uploaded == 2
    assert stored_windows(HostStream(objects, HOST)) == [0, 1, 2]


def test_no_double_append_when_the_reply_to_an_append_is_lost(tmp_path: Path) -> None:
    flaky = FlakyStore()
    stream = HostStream(flaky, HOST)
    with Spool(tmp_path) as spool:
        for i in range(3):
            spool.put(snapshot(HOST, i))
        up = Uploader(spool, stream)
        assert up.run_once() == 0.0  # window 0 stored normally
        # Window 1: its index segment lands, but the store's reply is lost.
        flaky.failing, flaky.fail_after_write = 1, True
        flaky.fail_keys = lambda key: key.startswith("index/")
        assert up.run_once() > 0  # type: ignore[operator]
        drain(up)
        assert up.duplicates_skipped == 1 and up.uploaded == 2
    assert stored_windows(HostStream(flaky, HOST)) == [0, 1, 2]


def test_the_tail_check_only_skips_the_very_same_snapshot(tmp_path: Path) -> None:
    objects = MemoryStore()
    stream = HostStream(objects, HOST)
    with Spool(tmp_path) as spool:
        a = spool.put(snapshot(HOST, 0))
        b = spool.put(snapshot(HOST, 0))  # same content, another spool id: a real second window
        snap_a = spool.load(a)
        assert snap_a is not None
        stream.append(snap_a)
        up = Uploader(spool, HostStream(objects, HOST))
        drain(up)
        assert up.duplicates_skipped == 1 and up.uploaded == 1
        assert not b.exists()
    assert len(list(HostStream(objects, HOST).entries())) == 2


def test_nothing_is_appended_without_the_lease(tmp_path: Path) -> None:
    objects = MemoryStore()
    allowed = False
    with Spool(tmp_path) as spool:
        spool.put(snapshot(HOST, 0))
        up = Uploader(spool, HostStream(objects, HOST), can_write=lambda: allowed)
        assert up.run_once() == pytest.approx(0.25)
        assert up.waiting_for_lease and len(spool) == 1
        assert list(objects.list("")) == []
        allowed = True
        drain(up)
        assert len(spool) == 0 and up.uploaded == 1


def test_a_spooled_snapshot_of_another_host_is_quarantined(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.put(snapshot("other-host", 0))
        spool.put(snapshot(HOST, 1))
        up = Uploader(spool, HostStream(MemoryStore(), HOST))
        drain(up)
        assert up.uploaded == 1 and spool.quarantined_total == 1


def test_the_thread_flushes_and_stops(tmp_path: Path) -> None:
    objects = MemoryStore()
    with Spool(tmp_path) as spool:
        up = Uploader(spool, HostStream(objects, HOST))
        up.start()
        for i in range(4):
            spool.put(snapshot(HOST, i))
            up.notify()
        assert up.flush(timeout=10.0)
        assert up.stop(timeout=5.0)
    assert stored_windows(HostStream(objects, HOST)) == [0, 1, 2, 3]


def test_flush_gives_up_at_its_timeout_and_keeps_the_spool(tmp_path: Path) -> None:
    flaky = FlakyStore()
    flaky.failing = 10**6
    with Spool(tmp_path) as spool:
        spool.put(snapshot(HOST, 0))
        up = Uploader(spool, HostStream(flaky, HOST), backoff=Backoff(0.01, 0.02))
        up.start()
        assert up.flush(timeout=0.2) is False
        assert up.stop(timeout=5.0)
        assert len(spool) == 1 and up.errors >= 2
