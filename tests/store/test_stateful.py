"""A state machine over one host stream (``Repository(...).stream(host, create=True)``),
checked against a plain list: appends of windows in any time order, reads by seq,
queries by time range, stats, and reopening the stream from the store.

The reference is the list of appended snapshots, seq = position. Queries are checked
sample by sample with plain Python over it (no numpy search), stats by counting it
and by listing the store's raw objects. ``tests/reliability/test_repair_machine.py``
is the machine for crashes and repair; this one is about what a healthy stream
answers.
"""

from __future__ import annotations

import struct
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from snapcloud.backends import MemoryStore
from snapcloud.errors import HostNotFound, SnapshotNotFound
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig, SnapshotQuery
from snapcloud.store import Repository
from tests.strategies import SPECIAL_BITS

HOST = "gpu-7"
KEYFRAME_INTERVAL = 3
CONFIG = SnapshotConfig(keyframe_interval=KEYFRAME_INTERVAL)
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
S = 10**9
WINDOW_S = 600
FINGERPRINTS = ("fp-a", "fp-b")
#: a window: its start (minutes from T0), fingerprint, and metric -> (seconds, values)
Window = tuple[int, str, dict[str, tuple[list[int], list[float]]]]

offsets = st.lists(st.integers(0, WINDOW_S - 1), min_size=1, max_size=12, unique=True).map(sorted)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from(SPECIAL_BITS).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]),
)


@st.composite
def windows(draw: st.DrawFn) -> Window:
    """A window's start (minutes from T0, in any order), fingerprint and metrics."""
    start = draw(st.integers(0, 240))
    fingerprint = draw(st.sampled_from(FINGERPRINTS))
    names = draw(st.lists(st.sampled_from(["util", "power", "mem"]), min_size=1, unique=True))
    metrics = {}
    for name in sorted(names):
        secs = draw(offsets)
        metrics[name] = (secs, draw(st.lists(values, min_size=len(secs), max_size=len(secs))))
    return start, fingerprint, metrics


def _near(points: list[int]) -> st.SearchStrategy[int]:
    """One of ``points``, or one nanosecond either side."""
    return st.sampled_from(points).flatmap(lambda t: st.sampled_from([t, t - 1, t + 1]))


def _bits(xs: list[float]) -> list[int]:
    return [struct.unpack("<Q", struct.pack("<d", x))[0] for x in xs]


class StreamMachine(RuleBasedStateMachine):
    """One stream over a memory store; ``appended[seq]`` is what was appended at ``seq``."""

    @initialize(batch=st.lists(windows(), max_size=8))
    def setup(self, batch: list[Window]) -> None:
        self.objects = MemoryStore()
        self.stream = Repository(self.objects, CONFIG).stream(HOST, create=True)
        self.appended: list[ProfileSnapshot] = []
        self.append(batch)

    def _snapshot(self, window: Window) -> ProfileSnapshot:
        start_min, fingerprint, metrics = window
        start = T0 + start_min * 60 * S
        series = [
            MetricSeries(
                name, start + np.array(secs, dtype=np.int64) * S, np.array(vals, np.float64)
            )
            for name, (secs, vals) in metrics.items()
        ]
        return ProfileSnapshot(
            HOST,
            series,
            window_start=start,
            window_end=start + WINDOW_S * S,
            fingerprint=fingerprint,
            metadata={"n": len(self.appended)},  # every snapshot is new content
        )

    def _bound(self) -> st.SearchStrategy[int | None]:
        """Open, anywhere, or at (or next to) a window edge or a sample: where off-by-ones
        show."""
        edges = sorted({T0} | {t for s in self.appended for t in (s.window_start, s.window_end)})
        samples = sorted({int(t) for s in self.appended for m in s.metrics for t in m.timestamps})
        anywhere = st.integers(T0 - WINDOW_S * S, T0 + 260 * 60 * S)
        return st.one_of(
            st.none(), _near(edges), _near(samples) if samples else st.nothing(), anywhere
        )

    # ------------------------------------------------------------------ rules

    @rule(batch=st.lists(windows(), min_size=1, max_size=4))
    def append(self, batch: list[Window]) -> None:
        """Windows in any time order, overlapping or not: each is the next seq."""
        for window in batch:
            snap = self._snapshot(window)
            entry = self.stream.append(snap)
            assert entry.seq == len(self.appended)
            self.appended.append(snap.with_seq(entry.seq))

    @precondition(lambda self: self.appended)
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(0, len(self.appended) - 1), label="seq")
        got = self.stream.get(seq)
        assert got == self.appended[seq]
        assert got.checksum == self.appended[seq].checksum

    @rule()
    def get_past_the_end(self) -> None:
        with pytest.raises(SnapshotNotFound):
            self.stream.get(len(self.appended))

    @rule(data=st.data(), fingerprint=st.none() | st.sampled_from(FINGERPRINTS))
    def query_by_time(self, data: st.DataObject, fingerprint: str | None) -> None:
        lo, hi = data.draw(self._bound(), label="start"), data.draw(self._bound(), label="end")
        if lo is not None and hi is not None and hi < lo:
            lo, hi = hi, lo
        query = SnapshotQuery(start_ns=lo, end_ns=hi, fingerprint=fingerprint)
        got = self.stream.query_all(query)
        want = [
            s
            for s in self.appended
            if (lo is None or s.window_end > lo)
            and (hi is None or s.window_start < hi)
            and (fingerprint is None or s.fingerprint == fingerprint)
        ]
        assert [s.seq for s in got] == [s.seq for s in want]
        for g, w in zip(got, want, strict=True):
            assert (g.window_start, g.window_end, g.fingerprint) == (
                w.window_start,
                w.window_end,
                w.fingerprint,
            )
            assert [m.name for m in g.metrics] == [m.name for m in w.metrics]
            for gm, wm in zip(g.metrics, w.metrics, strict=True):
                kept = [
                    (t, v)
                    for t, v in zip(wm.timestamps.tolist(), _bits(wm.values.tolist()), strict=True)
                    if (lo is None or t >= lo) and (hi is None or t < hi)
                ]
                assert gm.timestamps.tolist() == [t for t, _ in kept]
                assert _bits(gm.values.tolist()) == [v for _, v in kept]

    @rule()
    def stats(self) -> None:
        st_ = self.stream.stats()
        n = len(self.appended)
        groups = -(-n // KEYFRAME_INTERVAL)
        assert (st_.snapshots, st_.keyframes, st_.deltas) == (n, groups, n - groups)
        assert st_.segments == groups
        assert st_.tiers == ({"raw": n} if n else {})
        assert st_.samples == sum(s.sample_count for s in self.appended)
        assert st_.raw_bytes == sum(s.raw_bytes for s in self.appended)
        assert st_.fingerprints == dict(Counter(s.fingerprint for s in self.appended))
        assert st_.first_ns == min((s.window_start for s in self.appended), default=None)
        assert st_.last_ns == max((s.window_end for s in self.appended), default=None)
        raw = sum(i.size for i in self.objects.list(f"raw/{HOST}/"))
        assert st_.stored_bytes == raw

    @rule()
    def reopen(self) -> None:
        """A new repository over the same store: nothing but the objects carries over."""
        repo = Repository(self.objects, CONFIG)
        if not self.appended:
            with pytest.raises(HostNotFound):
                repo.stream(HOST)
        self.stream = repo.stream(HOST, create=True)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def next_seq_follows_the_appends(self) -> None:
        assert self.stream.next_seq == len(self.appended)


StreamMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_stream_against_a_list = StreamMachine.TestCase
