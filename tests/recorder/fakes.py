"""Fakes for recorder tests: a clock that never waits, scripted collectors, a flaky store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from snapcloud.backends import ForwardingStore, MemoryStore
from snapcloud.collectors import Sample
from snapcloud.errors import RetryableBackendError
from snapcloud.models import MetricSeries, ProfileSnapshot

WALL0_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z, on every grid
MONO0 = 5_000.0


class FakeClock:
    """Monotonic and wall time that move only when waited on or advanced.

    ``oversleep(seconds)`` returns how much longer than asked each wait lasts.
    """

    def __init__(self, *, wall_offset_ns: int = 350_000_000) -> None:
        self.mono = MONO0
        self.wall_offset_ns = wall_offset_ns
        self.waits: list[float] = []
        self.oversleep: Callable[[float], float] = lambda s: 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.mono

    def time_ns(self) -> int:
        return WALL0_NS + self.wall_offset_ns + round((self.mono - MONO0) * 1e9)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        self.advance(seconds + self.oversleep(seconds))
        return event.is_set()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.mono += seconds


@dataclass
class FakeCollector:
    """Reports ``fake.tick`` (gauge) and ``fake.total`` (counter); ``cost(k)`` seconds per call."""

    clock: FakeClock
    name: str = "fake"
    cost: Callable[[int], float] = lambda k: 0.0
    on_collect: Callable[[int], None] | None = None
    extra: Callable[[int], list[Sample]] = lambda k: []
    calls: int = 0
    closed: bool = False
    label_values: dict[str, str] = field(default_factory=lambda: {"fake.model": "F-1"})

    def labels(self) -> dict[str, str]:
        return dict(self.label_values)

    def collect(self) -> list[Sample]:
        k = self.calls
        self.calls += 1
        if self.on_collect is not None:
            self.on_collect(k)
        self.clock.advance(self.cost(k))
        return [
            Sample("fake.tick", float(k), "gauge", "n"),
            Sample("fake.total", float(10 * k), "counter", "count"),
            *self.extra(k),
        ]

    def close(self) -> None:
        self.closed = True


class FlakyStore(ForwardingStore):
    """Wraps a ``MemoryStore``; puts fail while ``failing`` (optionally after landing)."""

    def __init__(self, inner: MemoryStore | None = None) -> None:
        super().__init__(inner or MemoryStore())
        self.description = "flaky " + self.inner.description
        self.failing = 0  # how many more puts fail
        self.fail_after_write = False  # land the put, then raise (a lost reply)
        self.fail_keys: Callable[[str], bool] = lambda key: True
        self.put_calls: list[str] = []

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        self.put_calls.append(key)
        if self.failing and self.fail_keys(key):
            self.failing -= 1
            if self.fail_after_write:
                self.inner.put(key, data, if_absent=if_absent, if_match=if_match)
            raise RetryableBackendError(f"injected failure putting {key}", key=key)
        return self.inner.put(key, data, if_absent=if_absent, if_match=if_match)


@dataclass
class FakeProc:
    pid: int
    proc_name: str
    cpu: list[float]  # successive cpu_percent answers
    gone: bool = False

    def cpu_percent(self, interval: Any = None) -> float:
        if self.gone:
            raise ProcessLookupError(self.pid)
        return self.cpu.pop(0) if len(self.cpu) > 1 else self.cpu[0]

    def name(self) -> str:
        return self.proc_name


class FakePsutil:
    """The slice of psutil the fingerprinter uses."""

    def __init__(self, procs: list[FakeProc]) -> None:
        self.procs = {p.pid: p for p in procs}

    def process_iter(self) -> Iterator[FakeProc]:
        return iter(list(self.procs.values()))

    def Process(self, pid: int) -> FakeProc:
        if pid not in self.procs:
            raise ProcessLookupError(pid)
        return self.procs[pid]


def snapshot(host: str, i: int, *, n: int = 5, interval_ns: int = 10**9) -> ProfileSnapshot:
    """A small regular snapshot for spool and uploader tests; window ``i`` of ``host``."""
    start = WALL0_NS + i * n * interval_ns
    ts = [start + j * interval_ns for j in range(n)]
    metrics = [
        MetricSeries("cpu.util", ts, [float(i * n + j) for j in range(n)], unit="%"),
        MetricSeries("mem.used", ts, [1e9 + i] * n, unit="bytes"),
    ]
    return ProfileSnapshot(
        host,
        metrics,
        window_start=start,
        window_end=start + n * interval_ns,
        fingerprint="test",
        labels={"cpu.model": "fake"},
        metadata={"samples": n, "window": i},
    )
