"""Event samples (XID errors): every occurrence kept, several in one tick included."""

from __future__ import annotations

import threading

import numpy as np

from snapcloud.codec import decode, encode_keyframe
from snapcloud.collectors import Sample
from snapcloud.models import ProfileSnapshot
from snapcloud.recorder import Sampler, Window
from tests.recorder.fakes import FakeClock, FakeCollector

EVENTS = {2: [79.0, 48.0], 4: [13.0]}  # tick -> XID codes seen at that tick


def events(k: int) -> list[Sample]:
    out = [Sample("gpu.0.xid", code, "gauge", "xid", event=True) for code in EVENTS.get(k, [])]
    return [*out, Sample("fake.twice", 1.0, "gauge", "n"), Sample("fake.twice", 2.0, "gauge", "n")]


def one_window() -> Window:
    clock = FakeClock()
    sampler = Sampler(
        [FakeCollector(clock, extra=events)], interval_s=0.1, window_s=1.0, clock=clock
    )
    windows: list[Window] = []
    sampler.run(windows.append, stop=threading.Event(), duration_s=0.6)
    assert len(windows) == 1 and windows[0].ticks == 6
    return windows[0]


def test_every_event_is_kept_with_the_tick_that_saw_it() -> None:
    w = one_window()
    m = {x.name: x for x in w.metrics}
    ticks = m["fake.tick"].timestamps
    xid = m["gpu.0.xid"]
    assert list(xid.values) == [79.0, 48.0, 13.0]
    assert list(xid.timestamps) == [ticks[2], ticks[2], ticks[4]]
    assert xid.unit == "xid" and xid.kind == "gauge"
    assert list(m["fake.twice"].values) == [2.0] * 6, "a plain sample twice in a tick: the last"


def test_events_filling_as_many_rows_as_ticks_keep_their_own_timestamps() -> None:
    # Three events over three ticks, two in the first: as many rows as ticks, not one per tick.
    clock = FakeClock()

    def extra(k: int) -> list[Sample]:
        codes = {0: [31.0, 43.0], 2: [63.0]}.get(k, [])
        return [Sample("gpu.1.xid", c, "gauge", "xid", event=True) for c in codes]

    sampler = Sampler(
        [FakeCollector(clock, extra=extra)], interval_s=0.1, window_s=1.0, clock=clock
    )
    windows: list[Window] = []
    sampler.run(windows.append, stop=threading.Event(), duration_s=0.3)
    m = {x.name: x for x in windows[0].metrics}
    ticks = m["fake.tick"].timestamps
    assert list(m["gpu.1.xid"].timestamps) == [ticks[0], ticks[0], ticks[2]]


def test_events_survive_the_codec_bit_exact() -> None:
    w = one_window()
    snap = ProfileSnapshot("node-1", w.metrics, window_start=w.start_ns, window_end=w.end_ns)
    back = decode(encode_keyframe(snap))
    xid = back.metric("gpu.0.xid")
    orig = snap.metric("gpu.0.xid")
    assert np.array_equal(xid.timestamps, orig.timestamps)
    assert np.array_equal(xid.values, orig.values)
