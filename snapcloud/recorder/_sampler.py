"""The sampling loop: collectors driven on a drift-free monotonic schedule, cut into windows.

Schedule. At start the wall clock is rounded up to the next multiple of the
interval (``t0_wall``, so hosts sample on a shared grid) and the matching
monotonic instant is ``t0``. Tick ``k`` is due at ``t0 + k * interval`` on
``time.monotonic`` and is stamped ``t0_wall + k * interval_ns``: timestamps
are exactly regular whatever the sleep jitter or the collection time, so the
codec stores them as a start and a step. The delay is measured against the
due time, never against the previous tick, so errors do not accumulate.

Late and skipped ticks. Each tick records ``recorder.late_ms`` (gauge: how far
past its due time the collection started) and ``recorder.collect_ms`` (gauge:
what the collectors took). When a slow collection overran by a whole interval
or more, the ticks whose time has passed are skipped, not bunched: the next
tick is the latest one already due, and ``recorder.skipped_ticks`` (a counter,
cumulative since start) says how many were skipped. Nothing is skipped silently.

Windows sit on a wall-clock grid of ``window`` (``[w * window, (w+1) * window)``);
a window is sealed right after its last tick. The first window of a run starts
at the run's first tick; the last one, cut short by a stop, ends one interval
after its last tick and is marked partial. Metrics sampled at every tick of a
window share one timestamp array.

Events. A sample marked ``event`` (an XID error) is one occurrence: each is
kept, stamped with the tick that collected it, several per tick included (the
series' timestamps repeat), where a plain sample reported twice in a tick
keeps only the last value.

Wall clock. Timestamps follow the monotonic clock; at each window boundary
the sampler compares it with the wall clock and, when the wall clock has moved
ahead by an interval or more (NTP step, suspend), moves the grid forward by
whole intervals. A wall clock that went back is logged and not followed (the
stream's timestamps never go back).

Not before. ``run(not_before_ns=...)`` is where the stream already ends (the
store's last window, the spool's, the journal's last tick): a wall clock behind
it (a host restarted before NTP synced) would stamp samples over stored ones, so
the first tick is stamped at the first grid line at or after it instead, and the
grid runs from there on the monotonic clock (one warning). Every window sealed
while the stamps are ahead of the wall clock by an interval or more carries the
offset (``Window.clock_offset_ns``); once the wall clock catches up (NTP steps
it), the grid follows it again.

Resume. ``run(resume=...)`` takes the ticks of a window a killed run left in the
journal: the first window goes on from them when the run's first tick falls in
it, else they are sealed first as a partial window of their own. ``on_tick``
sees every tick as it is taken (the recorder journals it).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from snapcloud.collectors import Collector, Sample
from snapcloud.errors import ValidationError
from snapcloud.models import MetricSeries

__all__ = ["Clock", "Sampler", "SamplerStats", "SystemClock", "Tick", "Window"]

_log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.001
LATE_MS = "recorder.late_ms"
SKIPPED_TICKS = "recorder.skipped_ticks"
COLLECT_MS = "recorder.collect_ms"


class Clock(Protocol):
    """Time as the sampler sees it: injected so tests run without waiting."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def time_ns(self) -> int:
        """Wall-clock nanoseconds since the epoch."""
        ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Block up to ``seconds`` or until ``event`` is set; return whether it is set."""
        ...


class SystemClock:
    """The real clocks: ``time.monotonic``, ``time.time_ns`` and ``Event.wait``."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def time_ns(self) -> int:
        """``time.time_ns()``."""
        return time.time_ns()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """``event.wait(seconds)``."""
        return event.wait(seconds)


@dataclass(frozen=True)
class Window:
    """One sealed window: its bounds (ns, end exclusive), metrics and tick accounting;
    ``clock_offset_ns``: how far its stamps ran ahead of the wall clock (0: not by an
    interval); ``recovered_ticks``: ticks a killed run took, replayed from the journal."""

    start_ns: int
    end_ns: int
    metrics: tuple[MetricSeries, ...]
    ticks: int
    late_ticks: int
    skipped_ticks: int
    max_late_ms: float
    collect_errors: int
    partial: bool
    clock_offset_ns: int = 0
    recovered_ticks: int = 0


@dataclass(frozen=True)
class Tick:
    """One tick as taken: its stamp, its window's start, its samples and schedule facts
    (``skipped``: ticks skipped just before it, ``errors``: collectors that failed)."""

    ts: int
    window_start: int
    samples: list[Sample]
    skipped: int = 0
    errors: int = 0
    late: bool = False


@dataclass
class SamplerStats:
    """Totals since the sampler started."""

    ticks: int = 0
    windows: int = 0
    late_ticks: int = 0
    skipped_ticks: int = 0
    collect_errors: int = 0


@dataclass
class _Metric:
    kind: str
    unit: str
    rows: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    repeated: bool = False  # event samples: several in one tick, each kept


class _Builder:
    """The ticks of the window being filled."""

    def __init__(self, index: int, start_ns: int, end_ns: int) -> None:
        self.index = index
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.ts: list[int] = []
        self.metrics: dict[str, _Metric] = {}
        self.late_ticks = 0
        self.skipped_ticks = 0
        self.max_late_ms = 0.0
        self.collect_errors = 0
        self.clock_offset_ns = 0
        self.recovered = 0

    def replay(self, tick: Tick, known: Callable[[Sample], bool]) -> None:
        """Add a tick a killed run took (from the journal)."""
        self.add(tick.ts, tick.samples, known)
        self.skipped_ticks += tick.skipped
        self.collect_errors += tick.errors
        self.late_ticks += tick.late
        self.recovered += 1

    def add(self, ts: int, samples: Sequence[Sample], known: Callable[[Sample], bool]) -> None:
        row = len(self.ts)
        self.ts.append(ts)
        for s in samples:
            m = self.metrics.get(s.name)
            if m is None:
                if not known(s):
                    continue
                m = self.metrics[s.name] = _Metric(s.kind, s.unit)
            if m.rows and m.rows[-1] == row and not s.event:
                m.values[-1] = float(s.value)  # reported twice in one tick: the last wins
            else:
                m.repeated = m.repeated or bool(m.rows and m.rows[-1] == row)
                m.rows.append(row)
                m.values.append(float(s.value))

    def build(self, *, partial: bool, interval_ns: int) -> Window:
        ts = np.asarray(self.ts, dtype=np.int64)
        out = []
        for name in sorted(self.metrics):
            m = self.metrics[name]
            dense = len(m.rows) == ts.size and not m.repeated
            t = ts if dense else ts[np.asarray(m.rows, dtype=np.intp)]
            out.append(MetricSeries(name, t, np.asarray(m.values), kind=m.kind, unit=m.unit))
        end = min(self.end_ns, int(ts[-1]) + interval_ns) if partial else self.end_ns
        return Window(
            start_ns=self.start_ns,
            end_ns=max(end, self.start_ns),
            metrics=tuple(out),
            ticks=ts.size,
            late_ticks=self.late_ticks,
            skipped_ticks=self.skipped_ticks,
            max_late_ms=self.max_late_ms,
            collect_errors=self.collect_errors,
            partial=partial,
            clock_offset_ns=self.clock_offset_ns,
            recovered_ticks=self.recovered,
        )


class Sampler:
    """Samples ``collectors`` every ``interval_s`` and hands each sealed ``Window`` on.

    ``late_threshold_s`` (default a tenth of the interval) is how late a tick may
    start before it counts in ``late_ticks``. ``align`` puts ticks on the wall-clock
    grid of the interval. Raises ``ValidationError`` for an interval under 1 ms or
    a window shorter than the interval.
    """

    def __init__(
        self,
        collectors: Sequence[Collector],
        *,
        interval_s: float = 1.0,
        window_s: float = 60.0,
        clock: Clock | None = None,
        late_threshold_s: float | None = None,
        align: bool = True,
    ) -> None:
        if not (math.isfinite(interval_s) and interval_s >= MIN_INTERVAL_S):
            raise ValidationError(
                f"interval: {interval_s!r} s is under the minimum of {MIN_INTERVAL_S} s",
                field="interval",
            )
        if not (math.isfinite(window_s) and window_s >= interval_s):
            raise ValidationError(
                f"window: {window_s!r} s is shorter than the interval of {interval_s} s",
                field="window",
            )
        self.collectors = list(collectors)
        self.interval_ns = round(interval_s * 1e9)
        self.interval_s = self.interval_ns / 1e9
        self.window_ns = round(window_s * 1e9)
        self.clock: Clock = clock or SystemClock()
        self.late_threshold_s = (
            self.interval_s / 10 if late_threshold_s is None else late_threshold_s
        )
        self.align = align
        self.stats = SamplerStats()
        self._bad_names: set[str] = set()
        self._failing: set[str] = set()
        self._clock_behind = False

    # ------------------------------------------------------------------ helpers

    def _known(self, s: Sample) -> bool:
        """Whether a new metric name (with its kind and unit) can be stored; logs once if not."""
        if s.name in self._bad_names:
            return False
        try:
            MetricSeries(s.name, [], [], kind=s.kind, unit=s.unit)
        except ValidationError as exc:
            self._bad_names.add(s.name)
            _log.warning("sampler: metric %r dropped: %s", s.name, exc)
            return False
        return True

    def _collect(self) -> tuple[list[Sample], int]:
        out: list[Sample] = []
        errors = 0
        for c in self.collectors:
            name = getattr(c, "name", type(c).__name__)
            try:
                out.extend(c.collect())
            # A collector must not stop the recorder: count the failure, log it once.
            except Exception as exc:
                errors += 1
                if name not in self._failing:
                    self._failing.add(name)
                    _log.error("sampler: collector %s failed (%s); will keep trying", name, exc)
            else:
                if name in self._failing:
                    self._failing.discard(name)
                    _log.info("sampler: collector %s works again", name)
        return out, errors

    def _window_of(self, ts: int) -> int:
        return ts // self.window_ns

    # ------------------------------------------------------------------ loop

    def run(
        self,
        on_window: Callable[[Window], None],
        *,
        stop: threading.Event,
        duration_s: float | None = None,
        not_before_ns: int | None = None,
        resume: Sequence[Tick] = (),
        on_tick: Callable[[Tick], None] | None = None,
    ) -> SamplerStats:
        """Sample until ``stop`` is set or ``duration_s`` has passed; seal the last window.

        ``on_window`` is called in this thread for every sealed window, the final
        partial one included; ``on_tick`` for every tick taken. ``not_before_ns`` and
        ``resume``: module doc.
        """
        clock, interval, interval_ns = self.clock, self.interval_s, self.interval_ns
        now_wall, now = clock.time_ns(), clock.monotonic()
        aligned = -(-now_wall // interval_ns) * interval_ns if self.align else now_wall
        t0 = now + (aligned - now_wall) / 1e9  # ticks are due on the real clock...
        t0_wall = self._first_stamp(aligned, not_before_ns, resume)  # ...stamped from here
        end = None if duration_s is None else now + duration_s
        first_ts = t0_wall  # the first window of a run starts here, not at its grid line
        k = 0

        def seal(b: _Builder, *, partial: bool) -> None:
            b.clock_offset_ns = self._offset(t0, t0_wall)
            self._seal(b, on_window, partial=partial)

        builder = self._resumed(resume, t0_wall, seal)
        while not stop.is_set():
            due = t0 + k * interval
            if end is not None and due >= end:
                break
            delay = due - clock.monotonic()
            if delay > 0 and clock.wait(stop, delay):
                break
            now = clock.monotonic()
            behind = int((now - due) // interval)
            if behind >= 1:
                k += behind
                due = t0 + k * interval
                self.stats.skipped_ticks += behind
                if end is not None and due >= end:
                    break
            late_ms = max(0.0, (now - due) * 1e3)
            ts = t0_wall + k * interval_ns
            if builder is not None and self._window_of(ts) != builder.index:
                seal(builder, partial=False)
                builder = None
            if builder is None:
                w = self._window_of(ts)
                builder = _Builder(w, max(w * self.window_ns, first_ts), (w + 1) * self.window_ns)
            samples, errors = self._collect()
            collect_ms = (clock.monotonic() - now) * 1e3
            samples.append(Sample(LATE_MS, late_ms, "gauge", "ms"))
            samples.append(
                Sample(SKIPPED_TICKS, float(self.stats.skipped_ticks), "counter", "count")
            )
            samples.append(Sample(COLLECT_MS, collect_ms, "gauge", "ms"))
            builder.add(ts, samples, self._known)
            builder.skipped_ticks += max(behind, 0)
            builder.collect_errors += errors
            builder.max_late_ms = max(builder.max_late_ms, late_ms)
            late = late_ms > self.late_threshold_s * 1e3
            if late:
                builder.late_ticks += 1
                self.stats.late_ticks += 1
            self.stats.ticks += 1
            self.stats.collect_errors += errors
            if on_tick is not None:
                on_tick(Tick(ts, builder.start_ns, samples, max(behind, 0), errors, late))
            k += 1
            if self._window_of(t0_wall + k * interval_ns) != builder.index:
                seal(builder, partial=False)
                builder = None
                t0_wall = self._follow_wall_clock(t0, t0_wall)
        if builder is not None and builder.ts:
            seal(builder, partial=True)
        return self.stats

    def _first_stamp(self, aligned: int, not_before_ns: int | None, resume: Sequence[Tick]) -> int:
        """The first tick's stamp: ``aligned``, or the first grid line at or after where
        the stream ends when the wall clock is behind it (logged)."""
        floor = not_before_ns
        if resume:
            after = resume[-1].ts + self.interval_ns
            floor = after if floor is None else max(floor, after)
        if floor is None or floor <= aligned:
            return aligned
        step = self.interval_ns if self.align else 1
        first = -(-floor // step) * step
        _log.warning(
            "sampler: the wall clock is %.3f s behind the end of this host's stream; stamping "
            "from its end on (the offset is recorded in each window's metadata until the "
            "wall clock catches up)",
            (first - aligned) / 1e9,
        )
        self._clock_behind = True  # known: do not warn again that it went back
        return first

    def _offset(self, t0: float, t0_wall: int) -> int:
        """How far the stamps run ahead of the wall clock now: 0 under one interval."""
        expected = t0_wall + round((self.clock.monotonic() - t0) * 1e9)
        ahead = expected - self.clock.time_ns()
        return ahead if ahead >= self.interval_ns else 0

    def _resumed(
        self, resume: Sequence[Tick], first_ts: int, seal: Callable[..., None]
    ) -> _Builder | None:
        """Builders for the journal's ticks: each window before the one ``first_ts`` falls
        in is sealed as partial; a tick in that window makes it the builder to go on with."""
        builder: _Builder | None = None
        for tick in resume:
            w = self._window_of(tick.ts)
            if builder is not None and builder.index != w:
                seal(builder, partial=True)
                builder = None
            if builder is None:
                builder = _Builder(w, tick.window_start, (w + 1) * self.window_ns)
            builder.replay(tick, self._known)
        if builder is not None and builder.index != self._window_of(first_ts):
            seal(builder, partial=True)
            builder = None
        return builder

    def _seal(
        self, builder: _Builder, on_window: Callable[[Window], None], *, partial: bool
    ) -> None:
        window = builder.build(partial=partial, interval_ns=self.interval_ns)
        self.stats.windows += 1
        on_window(window)

    def _follow_wall_clock(self, t0: float, t0_wall: int) -> int:
        """Move the grid forward by whole intervals when the wall clock ran ahead of it."""
        clock = self.clock
        expected = t0_wall + round((clock.monotonic() - t0) * 1e9)
        drift = clock.time_ns() - expected
        steps = int(drift // self.interval_ns)
        if steps >= 1:
            _log.warning(
                "sampler: wall clock is %.3f s ahead of the schedule; moving timestamps forward",
                drift / 1e9,
            )
            self._clock_behind = False
            return t0_wall + steps * self.interval_ns
        behind = drift <= -self.interval_ns
        if behind and not self._clock_behind:
            _log.warning(
                "sampler: wall clock went back %.3f s; timestamps keep following the "
                "monotonic clock",
                -drift / 1e9,
            )
        self._clock_behind = behind
        return t0_wall
