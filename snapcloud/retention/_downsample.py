"""Downsampling for the archive tier: per metric and bucket, count/sum/min/max/last
(counters also first and increase), so mean, min, max and rate survive. Lossy by design.

Buckets are aligned to multiples of the resolution since the epoch (UTC), so a
1-minute bucket is a clock minute. NaN samples are not counted: they add nothing
to ``count`` or ``sum`` and are skipped by ``min``/``max``/``first``/``last``; a
bucket of NaN only has ``count`` 0 and NaN elsewhere.

Counter increase: each sample adds its difference to the previous sample of the
same metric (by time within a run of snapshots, ties in seq order; from run to run
in seq order), or its own value when it is lower (a reset: the counter restarted
from zero). The pair that straddles two archive objects is not
counted in either; ``first`` and ``last`` let a reader add it back
(``first - last_before``, or ``first`` after a reset).

Groups are added one at a time in seq order; buckets cut by a group boundary are
merged, so each (resolution, fingerprint) gives one aggregate snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from snapcloud.codec import META_RESOLUTION, META_TIER
from snapcloud.models import MetricSeries, ProfileSnapshot

__all__ = ["Downsampler"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_COLS = ("count", "sum", "min", "max", "last", "first", "increase")


@dataclass
class _Table:
    """Aggregates per bucket: bucket start times and one column per aggregate."""

    ts: I64
    cols: dict[str, F64]


@dataclass
class _Stream:
    """What one (resolution, fingerprint) has gathered so far."""

    first_seq: int
    last_seq: int
    window_start: int
    window_end: int
    snapshots: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, tuple[str, str]] = field(default_factory=dict)
    tables: dict[str, list[_Table]] = field(default_factory=dict)


def _groups(b: I64) -> npt.NDArray[np.intp]:
    return np.flatnonzero(np.concatenate(([True], b[1:] != b[:-1])))


def _first_last(
    values: F64, valid: npt.NDArray[np.bool_], starts: npt.NDArray[np.intp]
) -> tuple[F64, F64]:
    n = values.size
    idx = np.arange(n)
    last_i = np.maximum.reduceat(np.where(valid, idx, -1), starts)
    first_i = np.minimum.reduceat(np.where(valid, idx, n), starts)
    last = np.where(last_i >= 0, values[np.clip(last_i, 0, n - 1)], np.nan)
    first = np.where(first_i < n, values[np.clip(first_i, 0, n - 1)], np.nan)
    return first, last


def bucket(ts: I64, values: F64, increments: F64 | None, resolution: int) -> _Table:
    """Aggregate samples into buckets of ``resolution`` ns (samples in seq order)."""
    b = np.floor_divide(ts, resolution)
    if b.size > 1 and bool(np.any(b[1:] < b[:-1])):
        order = np.argsort(b, kind="stable")
        b, values = b[order], values[order]
        increments = None if increments is None else increments[order]
    if b.size == 0:
        return _Table(np.zeros(0, np.int64), {c: np.zeros(0) for c in _COLS})
    starts = _groups(b)
    valid = ~np.isnan(values)
    first, last = _first_last(values, valid, starts)
    cols = {
        "count": np.add.reduceat(valid.astype(np.float64), starts),
        "sum": np.add.reduceat(np.where(valid, values, 0.0), starts),
        "min": np.fmin.reduceat(values, starts),
        "max": np.fmax.reduceat(values, starts),
        "last": last,
        "first": first,
        "increase": np.add.reduceat(np.zeros(b.size) if increments is None else increments, starts),
    }
    return _Table(b[starts] * resolution, cols)


def combine(tables: Sequence[_Table]) -> _Table:
    """Merge partial tables (in seq order) whose buckets may repeat."""
    if len(tables) == 1:
        return tables[0]
    ts = np.concatenate([t.ts for t in tables])
    cols = {c: np.concatenate([t.cols[c] for t in tables]) for c in _COLS}
    if ts.size > 1 and bool(np.any(ts[1:] < ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        cols = {c: v[order] for c, v in cols.items()}
    if ts.size == 0:
        return _Table(ts, cols)
    starts = _groups(ts)
    first, _ = _first_last(cols["first"], cols["count"] > 0, starts)
    _, last = _first_last(cols["last"], cols["count"] > 0, starts)
    merged = {
        "count": np.add.reduceat(cols["count"], starts),
        "sum": np.add.reduceat(cols["sum"], starts),
        "min": np.fmin.reduceat(cols["min"], starts),
        "max": np.fmax.reduceat(cols["max"], starts),
        "last": last,
        "first": first,
        "increase": np.add.reduceat(cols["increase"], starts),
    }
    return _Table(ts[starts], merged)


def increments(values: F64, carry: float | None) -> tuple[F64, float | None]:
    """Per-sample counter increase (resets handled) and the new carry (last valid value)."""
    out = np.zeros(values.size)
    valid = ~np.isnan(values)
    v = values[valid]
    if v.size == 0:
        return out, carry
    prev = np.empty_like(v)
    prev[1:] = v[:-1]
    prev[0] = v[0] if carry is None else carry
    d = v - prev
    inc = np.where(d >= 0, d, v)
    if carry is None:
        inc[0] = 0.0
    out[valid] = inc
    return out, float(v[-1])


class Downsampler:
    """Feed groups in seq order; get one aggregate snapshot per (resolution, fingerprint)."""

    def __init__(self, host: str, resolutions: Sequence[int]) -> None:
        self.host = host
        self.resolutions = tuple(sorted(resolutions))
        self._streams: dict[tuple[int, str], _Stream] = {}
        self._carry: dict[str, float | None] = {}
        self.snapshots = 0
        self.samples = 0

    def add(self, snapshots: Sequence[ProfileSnapshot]) -> None:
        """One group's snapshots, in seq order."""
        run: list[ProfileSnapshot] = []
        for snap in snapshots:
            if run and snap.fingerprint != run[-1].fingerprint:
                self._add_run(run)
                run = []
            run.append(snap)
        if run:
            self._add_run(run)

    def _add_run(self, run: list[ProfileSnapshot]) -> None:
        """Snapshots of one fingerprint: each metric's windows concatenated, then bucketed."""
        pieces: dict[str, list[MetricSeries]] = {}
        for snap in run:
            self.snapshots += 1
            self.samples += snap.sample_count
            for m in snap.metrics:
                pieces.setdefault(m.name, []).append(m)
        fp = run[0].fingerprint
        for res in self.resolutions:
            st = self._streams.get((res, fp))
            if st is None:
                st = _Stream(run[0].seq, run[-1].seq, run[0].window_start, run[-1].window_end)
                self._streams[(res, fp)] = st
            st.last_seq = run[-1].seq
            st.window_start = min(st.window_start, *(s.window_start for s in run))
            st.window_end = max(st.window_end, *(s.window_end for s in run))
            st.snapshots += len(run)
            st.labels = dict(run[-1].labels)
        for name, parts in pieces.items():
            ts = np.concatenate([p.timestamps for p in parts])
            vals = np.concatenate([p.values for p in parts])
            if ts.size > 1 and bool(np.any(ts[1:] < ts[:-1])):
                # windows that overlap (docs/architecture.md D2): by time, ties in seq order
                order = np.argsort(ts, kind="stable")
                ts, vals = ts[order], vals[order]
            kind, unit = parts[-1].kind, parts[-1].unit
            inc = None
            if kind == "counter":
                inc, self._carry[name] = increments(vals, self._carry.get(name))
            for res in self.resolutions:
                st = self._streams[(res, fp)]
                st.kinds[name] = (kind, unit)
                st.tables.setdefault(name, []).append(bucket(ts, vals, inc, res))

    def finish(self) -> list[tuple[int, ProfileSnapshot]]:
        """``(resolution_ns, aggregate snapshot)``, finest resolution first, then by seq."""
        out = []
        for (res, fp), st in sorted(
            self._streams.items(), key=lambda kv: (kv[0][0], kv[1].first_seq)
        ):
            metrics: list[MetricSeries] = []
            for name, tables in st.tables.items():
                kind, unit = st.kinds[name]
                table = combine(tables)
                aggs = ["count", "sum", "min", "max", "last"]
                if kind == "counter":
                    aggs += ["first", "increase"]
                for agg in aggs:
                    metrics.append(
                        MetricSeries.trusted(
                            f"{name}:{agg}",
                            kind if agg in ("last", "first") else "gauge",
                            "" if agg == "count" else unit,
                            table.ts,
                            table.cols[agg],
                        )
                    )
            snap = ProfileSnapshot.trusted(
                host=self.host,
                seq=st.first_seq,
                window_start=st.window_start,
                window_end=st.window_end,
                fingerprint=fp,
                labels=st.labels,
                metadata={
                    META_RESOLUTION: res,
                    META_TIER: "archive",
                    "snapcloud.source_first_seq": st.first_seq,
                    "snapcloud.source_last_seq": st.last_seq,
                    "snapcloud.source_snapshots": st.snapshots,
                },
                metrics=tuple(metrics),
            )
            out.append((res, snap))
        return out
