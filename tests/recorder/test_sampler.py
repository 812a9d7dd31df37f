"""The sampling schedule: no drift, late and skipped ticks recorded, windows on a grid."""

from __future__ import annotations

import logging
import random
import threading

import numpy as np
import pytest

from snapcloud.collectors import Sample
from snapcloud.errors import ValidationError
from snapcloud.recorder import Sampler, Window
from snapcloud.recorder._sampler import COLLECT_MS, LATE_MS, SKIPPED_TICKS
from tests.recorder.fakes import WALL0_NS, FakeClock, FakeCollector

S = 10**9


def run(
    sampler: Sampler, duration: float | None, stop: threading.Event | None = None
) -> list[Window]:
    windows: list[Window] = []
    sampler.run(windows.append, stop=stop or threading.Event(), duration_s=duration)
    return windows


def all_ts(windows: list[Window], name: str = "fake.tick") -> np.ndarray:
    return np.concatenate(
        [w.metrics[[m.name for m in w.metrics].index(name)].timestamps for w in windows]
    )


def metric(w: Window, name: str) -> np.ndarray:
    return next(m for m in w.metrics if m.name == name).values


def test_schedule_has_no_drift_under_jittery_sleep_and_slow_collection() -> None:
    clock = FakeClock()
    rng = random.Random(7)
    clock.oversleep = lambda s: rng.uniform(0, 0.03)  # sleeps overshoot by up to 30 ms
    coll = FakeCollector(clock, cost=lambda k: rng.uniform(0.0, 0.05))  # collection takes time
    sampler = Sampler([coll], interval_s=0.1, window_s=1.0, clock=clock)
    windows = run(sampler, duration=100.0)
    ts = all_ts(windows)
    # Aligned on the interval grid, exactly regular, and the count is what 100 s holds.
    first = WALL0_NS + 400_000_000  # wall clock started at +0.35 s: next 100 ms line is +0.4 s
    assert ts[0] == first
    assert np.all(np.diff(ts) == 100_000_000)
    assert ts.size == sampler.stats.ticks
    assert 995 <= ts.size <= 1000
    # No accumulated lag: every tick starts within the oversleep of its due time.
    late = np.concatenate([metric(w, LATE_MS) for w in windows])
    assert late.max() < 31.0
    assert sampler.stats.skipped_ticks == 0


def test_windows_sit_on_the_wall_clock_grid_and_share_one_timestamp_array() -> None:
    clock = FakeClock()
    sampler = Sampler([FakeCollector(clock)], interval_s=0.25, window_s=1.0, clock=clock)
    windows = run(sampler, duration=3.4)
    # Start at +0.5 s (first 250 ms line after +0.35 s), stop at +3.75 s:
    # windows [0.5,1) [1,2) [2,3) and the partial [3,3.75).
    bounds = [((w.start_ns - WALL0_NS) / S, (w.end_ns - WALL0_NS) / S) for w in windows]
    assert bounds == [(0.5, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 3.75)]
    assert [w.ticks for w in windows] == [2, 4, 4, 3]
    assert [w.partial for w in windows] == [False, False, False, True]
    full = windows[1]
    arrays = {id(m.timestamps) for m in full.metrics}
    assert len(arrays) == 1, "every metric sampled at every tick shares the window's timestamps"
    assert {m.name for m in full.metrics} == {
        "fake.tick",
        "fake.total",
        LATE_MS,
        SKIPPED_TICKS,
        COLLECT_MS,
    }
    kinds = {m.name: (m.kind, m.unit) for m in full.metrics}
    assert kinds[SKIPPED_TICKS] == ("counter", "count")
    assert kinds[LATE_MS] == ("gauge", "ms")
    assert kinds["fake.total"] == ("counter", "count")


def test_a_slow_sample_is_late_and_overruns_are_skipped_and_counted() -> None:
    clock = FakeClock()
    # Tick 3 takes 0.35 s: tick 4 (due 0.1 s later) starts late by 0.25 s -> 2 ticks skipped,
    # the next tick taken is late by 0.05 s.
    coll = FakeCollector(clock, cost=lambda k: 0.35 if k == 3 else 0.0)
    sampler = Sampler([coll], interval_s=0.1, window_s=10.0, clock=clock)
    windows = run(sampler, duration=1.0)
    (w,) = windows
    ts = (all_ts(windows) - WALL0_NS) // 1_000_000
    assert ts.tolist() == [400, 500, 600, 700, 1000, 1100, 1200, 1300]
    late = metric(w, LATE_MS)
    assert late[4] == pytest.approx(50.0)
    assert late[:4].tolist() == [0.0] * 4
    assert metric(w, SKIPPED_TICKS).tolist() == [0, 0, 0, 0, 2, 2, 2, 2]
    assert metric(w, COLLECT_MS)[3] == pytest.approx(350.0)
    assert w.skipped_ticks == 2 and sampler.stats.skipped_ticks == 2
    assert w.late_ticks == 1 and w.max_late_ms == pytest.approx(50.0)


def test_a_metric_missing_at_some_ticks_gets_its_own_timestamps() -> None:
    clock = FakeClock()
    coll = FakeCollector(
        clock, extra=lambda k: [Sample("gpu.0.util", float(k), "gauge", "%")] if k % 2 else []
    )
    sampler = Sampler([coll], interval_s=0.1, window_s=1.0, clock=clock)
    w = run(sampler, duration=2.0)[1]
    gpu = next(m for m in w.metrics if m.name == "gpu.0.util")
    tick = next(m for m in w.metrics if m.name == "fake.tick")
    assert len(gpu) == len(tick) // 2
    assert set(gpu.timestamps.tolist()) <= set(tick.timestamps.tolist())


def test_stop_seals_the_partial_window() -> None:
    clock = FakeClock()
    stop = threading.Event()
    coll = FakeCollector(clock, on_collect=lambda k: stop.set() if k == 6 else None)
    sampler = Sampler([coll], interval_s=0.1, window_s=60.0, clock=clock)
    windows = run(sampler, duration=None, stop=stop)
    (w,) = windows
    assert w.partial and w.ticks == 7
    assert w.end_ns == int(w.metrics[0].timestamps[-1]) + 100_000_000


def test_a_failing_collector_and_bad_names_do_not_stop_sampling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()

    class Broken:
        name = "broken"

        def labels(self) -> dict[str, str]:
            return {}

        def collect(self) -> list[Sample]:
            raise RuntimeError("sensor fell off")

        def close(self) -> None:
            pass

    bad = FakeCollector(clock, extra=lambda k: [Sample("bad/name", 1.0, "gauge", "")])
    sampler = Sampler([Broken(), bad], interval_s=0.1, window_s=1.0, clock=clock)
    with caplog.at_level(logging.WARNING):
        windows = run(sampler, duration=2.0)
    assert sum(w.ticks for w in windows) == sampler.stats.ticks > 0
    assert sampler.stats.collect_errors == sampler.stats.ticks
    assert all("bad/name" not in [m.name for m in w.metrics] for w in windows)
    assert sum("sensor fell off" in r.message for r in caplog.records) == 1
    assert sum("bad/name" in r.message for r in caplog.records) == 1


def test_wall_clock_jump_forward_moves_the_grid_forward() -> None:
    clock = FakeClock()

    def jump(k: int) -> None:
        if k == 12:
            clock.wall_offset_ns += 5 * S  # NTP steps the clock 5 s ahead

    sampler = Sampler(
        [FakeCollector(clock, on_collect=jump)], interval_s=0.1, window_s=1.0, clock=clock
    )
    windows = run(sampler, duration=3.0)
    ts = all_ts(windows)
    assert np.all(np.diff(ts) > 0)
    assert np.all((ts - WALL0_NS) % 100_000_000 == 0), "still on the interval grid"
    gaps = np.diff(ts)
    assert gaps.max() == pytest.approx(5.1 * S, abs=0.11 * S)  # the jump, once
    assert (gaps == 100_000_000).sum() == gaps.size - 1


def test_bad_settings_are_refused() -> None:
    clock = FakeClock()
    with pytest.raises(ValidationError, match="interval"):
        Sampler([], interval_s=0.0, clock=clock)
    with pytest.raises(ValidationError, match="window"):
        Sampler([], interval_s=2.0, window_s=1.0, clock=clock)
