"""Aggregations over time, streamed snapshot by snapshot, vectorized per snapshot.

Every snapshot's selected metrics are concatenated into one array; runs of
samples that share a result row (a group, a metric field, a time bucket) are
reduced with ``ufunc.reduceat`` and folded into per-row state with ``ufunc.at``,
so no Python code runs per sample. Semantics (also in docs/QUERY.md):

- Rows: one per group-by value tuple, metric field and (with a step) time bucket.
  The metric field folds the GPU index (``gpu.3.power_avg_mw`` -> ``gpu.*.power_avg_mw``);
  group by ``gpu`` to keep GPUs apart. Buckets are ``[k*step, (k+1)*step)`` since
  the epoch, a row's ``time`` is its bucket's start.
- NaN samples are ignored by every aggregation; ``count`` counts the others. Over
  no sample every aggregation but ``count`` is null.
- ``mean``, ``min``, ``max``, ``sum``, ``count``: over every sample of the row,
  pooled across the series (hosts, GPUs) it holds.
- ``last``: the value of the latest sample; ties go to the series processed last
  (hosts sorted by name, then metric names sorted).
- ``p50``/``p90``/``p95``/``p99``: linear interpolation between closest ranks
  (numpy's default ``method="linear"``, Hyndman & Fan type 7), over the pooled
  samples. They need every sample in memory (counted against the query limit).
- ``increase``: per series, the sum of the rises between consecutive (non-NaN)
  samples in the range, where a drop means the counter restarted from 0 (the
  rise is then the new value); the sample before the range is not read, so the
  first sample contributes nothing. A rise belongs to the row (bucket) of its
  later sample. Summed over the series of a row.
- By time: "consecutive" and "latest" follow timestamps, not storage order. A
  host's windows may overlap or come back in time (a re-import, a backfill, a
  clock that stepped back: docs/architecture.md D2); its samples are then taken
  merged by timestamp, equal timestamps in the order they were stored (seq, then
  position). Counters of such a host are held (counted against the memory limit)
  and folded in that order at the end; a host whose planned windows follow each
  other in time streams as before.
- ``rate``: per series, its increase divided by the time those rises span (in
  seconds), i.e. per second; summed over the series of a row (total rate).
  ``rate`` and ``increase`` are null for gauges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from snapcloud.errors import ValidationError
from snapcloud.models import ProfileSnapshot, validate_metric_name
from snapcloud.query._executor import Budget
from snapcloud.query._planner import HostPlan
from snapcloud.query._result import Cell, Series
from snapcloud.query._selectors import GROUP_BUILTINS, gpu_index, metric_field

__all__ = [
    "AGGREGATIONS",
    "COUNTER_AGGREGATIONS",
    "PERCENTILES",
    "Aggregator",
    "SeriesCollector",
    "check_aggregations",
    "check_group_by",
]

AGGREGATIONS: tuple[str, ...] = (
    "mean",
    "min",
    "max",
    "sum",
    "count",
    "last",
    "p50",
    "p90",
    "p95",
    "p99",
    "rate",
    "increase",
)
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
COUNTER_AGGREGATIONS = frozenset({"rate", "increase"})

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
_INT64_MIN = np.iinfo(np.int64).min
_NO_TIMES: I64 = np.zeros(0, dtype=np.int64)


def check_aggregations(aggs: Sequence[str]) -> tuple[str, ...]:
    """``aggs`` without duplicates, checked. Raises ``ValidationError``."""
    if not aggs:
        raise ValidationError("aggregations: name at least one", field="agg")
    for a in aggs:
        if a not in AGGREGATIONS:
            raise ValidationError(
                f"--agg: unknown aggregation {a!r}; use one of {', '.join(AGGREGATIONS)}",
                field="agg",
            )
    return tuple(dict.fromkeys(aggs))


def check_group_by(group_by: Sequence[str]) -> tuple[str, ...]:
    """``group_by`` without duplicates: ``host``, ``gpu``, ``fingerprint`` or label names."""
    for g in group_by:
        if g not in GROUP_BUILTINS:
            validate_metric_name(g, "--group-by")
        if g in ("metric", "time", "unit", "kind", *AGGREGATIONS):
            raise ValidationError(f"--group-by: {g!r} names an output column", field="group_by")
    return tuple(dict.fromkeys(group_by))


class _Growable:
    """Per-index state arrays that grow as indices are handed out."""

    def __init__(self, **spec: tuple[type[Any], float | int]) -> None:
        self._spec = spec
        self.size = 0
        self._cap = 64
        self.arrays: dict[str, npt.NDArray[Any]] = {
            name: np.full(self._cap, fill, dtype=dtype) for name, (dtype, fill) in spec.items()
        }

    def add(self) -> int:
        if self.size == self._cap:
            self._cap *= 2
            for name, (dtype, fill) in self._spec.items():
                grown = np.full(self._cap, fill, dtype=dtype)
                grown[: self.size] = self.arrays[name][: self.size]
                self.arrays[name] = grown
        self.size += 1
        return self.size - 1

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.arrays[name]


@dataclass
class _Layout:
    """How one snapshot shape maps onto rows (cached per host, fingerprint, labels, names)."""

    perm: list[int]  # metric positions in name order
    rows: npt.NDArray[np.intp] | None  # the same as an array; None when in order already
    base_ids: I64  # per sorted metric: its (group values, field) id
    slots: I64 | None  # per sorted metric: its row (no step only)
    series: I64  # per sorted metric: its (host, metric) series id
    counter: npt.NDArray[np.bool_]


class Aggregator:
    """Folds snapshots into aggregated rows; ``rows()`` gives the answer."""

    def __init__(
        self,
        aggs: Sequence[str],
        group_by: Sequence[str] = (),
        step_ns: int | None = None,
        *,
        budget: Budget | None = None,
    ) -> None:
        self.aggs = check_aggregations(aggs)
        self.group_by = check_group_by(group_by)
        if step_ns is not None and not 0 < step_ns < 2**63:
            raise ValidationError(
                f"--step: {step_ns} ns is not a positive int64 (0 < step < 292 years)",
                field="step",
            )
        self.step_ns = step_ns
        self.budget = budget
        self.samples = 0
        self._labels = [g for g in self.group_by if g not in GROUP_BUILTINS]
        self._percentiles = [a for a in self.aggs if a in PERCENTILES]
        self._counters = any(a in COUNTER_AGGREGATIONS for a in self.aggs)
        self._layouts: dict[tuple[Any, ...], _Layout] = {}
        self._bases: dict[tuple[Any, ...], int] = {}
        self._base_keys: list[tuple[Any, ...]] = []
        self._base_meta: list[tuple[str, str]] = []  # unit, kind
        self._slot_ids: dict[tuple[int, int | None], int] = {}
        self._slot_keys: list[tuple[int, int | None]] = []
        self._state = _Growable(
            count=(np.int64, 0),
            sum=(np.float64, 0.0),
            min=(np.float64, np.inf),
            max=(np.float64, -np.inf),
            last_t=(np.int64, _INT64_MIN),
            last_v=(np.float64, np.nan),
        )
        self._series_ids: dict[tuple[str, str], int] = {}
        self._carry = _Growable(t=(np.int64, 0), v=(np.float64, np.nan))
        self._pair_ids: dict[tuple[int, int], int] = {}
        self._pairs = _Growable(
            slot=(np.int64, 0), inc=(np.float64, 0.0), dt=(np.float64, 0.0), n=(np.int64, 0)
        )
        self._kept: list[tuple[npt.NDArray[np.int32], F64]] = []
        # hosts whose planned windows do not follow each other in time, and their counter
        # samples (series, time, value, row) held until the answer
        self._unordered: dict[str, bool] = {}
        self._held_counters: list[tuple[I64, I64, F64, I64]] = []

    # ------------------------------------------------------------------ registries

    def _slot(self, base: int, bucket: int | None) -> int:
        key = (base, bucket)
        slot = self._slot_ids.get(key)
        if slot is None:
            slot = self._slot_ids[key] = self._state.add()
            self._slot_keys.append(key)
        return slot

    def _base(self, key: tuple[Any, ...], unit: str, kind: str) -> int:
        base = self._bases.get(key)
        if base is None:
            base = self._bases[key] = len(self._base_keys)
            self._base_keys.append(key)
            self._base_meta.append((unit, kind))
        return base

    def _series(self, host: str, metric: str) -> int:
        sid = self._series_ids.get((host, metric))
        if sid is None:
            sid = self._series_ids[(host, metric)] = self._carry.add()
        return sid

    def _layout(self, hp: HostPlan, snap: ProfileSnapshot) -> _Layout:
        labels: tuple[str, ...] = ()
        if self._labels:
            merged = {**snap.labels, **hp.user_labels}
            labels = tuple(merged.get(g, "") for g in self._labels)
        fp = snap.fingerprint if "fingerprint" in self.group_by else None
        names = tuple(snap.metric_names)
        key = (hp.host, fp, labels, names)
        lay = self._layouts.get(key)
        if lay is not None:
            return lay
        perm = sorted(range(len(names)), key=names.__getitem__)
        cols = snap.columns
        units, kinds = (
            (cols.units, cols.kinds)
            if cols is not None
            else ([m.unit for m in snap.metrics], [m.kind for m in snap.metrics])
        )
        base_ids, series, counter = [], [], []
        for i in perm:
            name = names[i]
            label_of = dict(zip(self._labels, labels, strict=True))
            group = tuple(
                hp.host
                if g == "host"
                else gpu_index(name)
                if g == "gpu"
                else fp
                if g == "fingerprint"
                else label_of[g]
                for g in self.group_by
            )
            base_ids.append(self._base((group, metric_field(name)), units[i], kinds[i]))
            series.append(self._series(hp.host, name))
            counter.append(kinds[i] == "counter")
        lay = _Layout(
            perm=perm,
            rows=None if perm == sorted(perm) else np.array(perm, dtype=np.intp),
            base_ids=np.array(base_ids, dtype=np.int64),
            slots=None
            if self.step_ns is not None
            else np.array([self._slot(b, None) for b in base_ids], dtype=np.int64),
            series=np.array(series, dtype=np.int64),
            counter=np.array(counter, dtype=bool),
        )
        self._layouts[key] = lay
        return lay

    # ------------------------------------------------------------------ folding

    def add(self, hp: HostPlan, snap: ProfileSnapshot) -> int:
        """Fold one (trimmed) snapshot of ``hp``'s host into the state; return its samples."""
        return self.add_many(hp, [snap])

    def add_many(self, hp: HostPlan, snaps: Sequence[ProfileSnapshot]) -> int:
        """Fold consecutive (trimmed) snapshots of ``hp``'s host, in order; return their
        samples. Snapshots that share a layout and hold columns (a compressed-tier
        object's hour, cut from one matrix) are folded in one pass: every run of
        samples is summed as on its own and the runs are added to each row in the
        same order, so the state is bit for bit what one ``add`` per snapshot leaves.
        Counters (their carry runs from snapshot to snapshot) go one by one."""
        snaps = [s for s in snaps if s.metric_names]
        if not snaps:
            return 0
        lay = self._layout(hp, snaps[0])
        counters = self._counters and bool(lay.counter.any())
        if len(snaps) > 1 and (
            counters or any(s.columns is None or self._layout(hp, s) is not lay for s in snaps)
        ):
            return sum(self.add_many(hp, [s]) for s in snaps)
        count = len(lay.perm)
        # Timestamps and metric ids per sample, only for what reads them.
        need_ts = self.step_ns is not None or "last" in self.aggs or counters
        need_mid = self.step_ns is not None or counters
        ts: I64 = _NO_TIMES
        starts_of = _NO_TIMES  # where each snapshot's samples start (several snapshots)
        if snaps[0].columns is not None:  # each metric as long as the others: matrix rows
            matrices = [c for s in snaps if (c := s.columns) is not None]  # all, checked above
            widths = [c.shape[1] for c in matrices]
            lens = np.repeat(np.asarray(widths, dtype=np.int64), count)
            total = count * sum(widths)
            if total == 0:
                return 0
            parts = [
                (c.values if lay.rows is None else c.values[lay.rows]).reshape(-1) for c in matrices
            ]
            vals = parts[0] if len(parts) == 1 else np.concatenate(parts)
            if need_ts:
                tiles = [np.tile(c.timestamps, count) for c in matrices]
                ts = tiles[0] if len(tiles) == 1 else np.concatenate(tiles)
            if len(snaps) > 1 and self.step_ns is not None:
                starts_of = np.cumsum([0, *(count * w for w in widths[:-1])])
                starts_of = starts_of[starts_of < total]  # empty last snapshots start nothing
        else:
            (snap,) = snaps
            ms = [snap.metrics[i] for i in lay.perm]
            lens = np.fromiter((m.values.size for m in ms), dtype=np.int64, count=count)
            total = int(lens.sum())
            if total == 0:
                return 0
            vals = np.concatenate([m.values for m in ms])
            if need_ts:
                ts = np.concatenate([m.timestamps for m in ms])
        members = len(snaps)
        ids = np.arange(count) if members == 1 else np.tile(np.arange(count), members)
        mid = np.repeat(ids, lens) if need_mid else _NO_TIMES
        if self.step_ns is None:
            assert lay.slots is not None
            nonzero = lens > 0
            run_start = (np.cumsum(lens) - lens)[nonzero]
            run_slot = (lay.slots if members == 1 else np.tile(lay.slots, members))[nonzero]
        else:
            bucket = ts // self.step_ns
            change = np.ones(total, dtype=bool)
            change[1:] = (mid[1:] != mid[:-1]) | (bucket[1:] != bucket[:-1])
            change[starts_of] = True  # a run never spans two snapshots
            run_start = np.flatnonzero(change)
            run_slot = np.array(
                [
                    self._slot(b, k)
                    for b, k in zip(
                        lay.base_ids[mid[run_start]].tolist(),
                        bucket[run_start].tolist(),
                        strict=True,
                    )
                ],
                dtype=np.int64,
            )
        run_len = np.diff(np.append(run_start, total))
        valid = ~np.isnan(vals)
        every = bool(valid.all())
        rid = _NO_TIMES  # per sample: its run (for NaN samples or counters only)
        if every and not counters:
            cnt = run_len
        else:
            rid = np.repeat(np.arange(run_start.size), run_len)
            if not every:
                vals, rid = vals[valid], rid[valid]
                ts = ts[valid] if need_ts else ts
                mid = mid[valid] if need_mid else mid
            cnt = np.bincount(rid, minlength=run_start.size)
        self.samples += total
        st = self._state
        np.add.at(st["count"], run_slot, cnt)
        if not vals.size:
            return total
        ne = cnt > 0
        starts = (np.cumsum(cnt) - cnt)[ne]
        slots = run_slot[ne]
        with np.errstate(invalid="ignore"):  # +inf + -inf is NaN, as it should be
            np.add.at(st["sum"], slots, np.add.reduceat(vals, starts))
        np.minimum.at(st["min"], slots, np.minimum.reduceat(vals, starts))
        np.maximum.at(st["max"], slots, np.maximum.reduceat(vals, starts))
        if "last" in self.aggs:
            ends = starts + cnt[ne] - 1
            self._fold_last(slots, ts[ends], vals[ends])
        if self._percentiles:
            if self.budget is not None:
                self.budget.hold(12 * vals.size)
            self._kept.append((np.repeat(slots, cnt[ne]).astype(np.int32), vals.copy()))
        if counters:
            if self._in_time_order(hp):
                self._fold_counters(lay, mid, ts, vals, run_slot[rid])
            else:
                self._hold_counters(lay, mid, ts, vals, run_slot[rid])
        return total

    def _in_time_order(self, hp: HostPlan) -> bool:
        """Whether every planned window of ``hp`` starts at or after the end of the windows
        planned before it (then its snapshots, in seq order, are in time order)."""
        unordered = self._unordered.get(hp.host)
        if unordered is None:
            end: int | None = None
            unordered = False
            for e in hp.entries:
                if end is not None and e.window_start < end:
                    unordered = True
                    break
                end = e.window_end if end is None else max(end, e.window_end)
            self._unordered[hp.host] = unordered
        return not unordered

    def _hold_counters(self, lay: _Layout, mid: I64, ts: I64, vals: F64, slot: I64) -> None:
        keep = lay.counter[mid]
        if not keep.any():
            return
        if self.budget is not None:
            self.budget.hold(32 * int(keep.sum()), "counter samples of overlapping windows")
        self._held_counters.append((lay.series[mid[keep]], ts[keep], vals[keep], slot[keep]))

    def _fold_held_counters(self) -> None:
        """Fold the held counter samples by time: per series, stably sorted by timestamp
        (the order they were held in breaks ties: seq, then position)."""
        if not self._held_counters:
            return
        held = self._held_counters
        series, ts, vals, slot = (np.concatenate([h[i] for h in held]) for i in range(4))
        self._held_counters.clear()
        order = np.lexsort((ts, series))  # lexsort is stable: ties keep the held order
        self._fold_series(series[order], ts[order], vals[order], slot[order])

    def _fold_last(self, slots: I64, t: I64, v: F64) -> None:
        order = np.lexsort((np.arange(slots.size), t, slots))
        sorted_slots = slots[order]
        pick = order[np.append(sorted_slots[1:] != sorted_slots[:-1], True)]
        s, ct, cv = slots[pick], t[pick], v[pick]
        newer = ct >= self._state["last_t"][s]
        self._state["last_t"][s[newer]] = ct[newer]
        self._state["last_v"][s[newer]] = cv[newer]

    def _fold_counters(self, lay: _Layout, mid: I64, ts: I64, vals: F64, slot: I64) -> None:
        keep = lay.counter[mid]
        if keep.any():
            self._fold_series(lay.series[mid[keep]], ts[keep], vals[keep], slot[keep])

    def _fold_series(self, series: I64, t: I64, v: F64, s: I64) -> None:
        """Fold counter samples whose series run in blocks, each block in time order and
        after what that series' carry holds."""
        first = np.ones(series.size, dtype=bool)
        first[1:] = series[1:] != series[:-1]
        sid = series[first]
        carry_t, carry_v = self._carry["t"], self._carry["v"]
        prev_v = np.empty_like(v)
        prev_t = np.empty_like(t)
        prev_v[1:], prev_t[1:] = v[:-1], t[:-1]
        prev_v[first], prev_t[first] = carry_v[sid], carry_t[sid]
        last = np.append(first[1:], True)
        carry_v[sid], carry_t[sid] = v[last], t[last]
        ok = ~np.isnan(prev_v)
        if not ok.any():
            return
        rise = np.where(v >= prev_v, v - prev_v, v)
        span = (t - prev_t).astype(np.float64)
        change = first.copy()
        change[1:] |= s[1:] != s[:-1]
        run_start = np.flatnonzero(change)
        run_pair = np.array(
            [
                self._pair(a, b)
                for a, b in zip(s[run_start].tolist(), series[run_start].tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        pair = np.repeat(run_pair, np.diff(np.append(run_start, series.size)))[ok]
        np.add.at(self._pairs["inc"], pair, rise[ok])
        np.add.at(self._pairs["dt"], pair, span[ok])
        np.add.at(self._pairs["n"], pair, 1)

    def _pair(self, slot: int, series: int) -> int:
        pid = self._pair_ids.get((slot, series))
        if pid is None:
            pid = self._pair_ids[(slot, series)] = self._pairs.add()
            self._pairs["slot"][pid] = slot
        return pid

    # ------------------------------------------------------------------ answer

    def columns(self) -> list[str]:
        """Output columns: group-by keys, metric, time (with a step), unit, kind, aggregations."""
        time = ["time"] if self.step_ns is not None else []
        return [*self.group_by, "metric", *time, "unit", "kind", *self.aggs]

    def _percentile_values(self, n: int) -> dict[str, F64]:
        out = {a: np.full(n, np.nan) for a in self._percentiles}
        if not self._kept:
            return out
        slots = np.concatenate([k[0] for k in self._kept])
        vals = np.concatenate([k[1] for k in self._kept])
        self._kept.clear()
        order = np.argsort(slots, kind="stable")
        slots, vals = slots[order], vals[order]
        bounds = np.flatnonzero(np.append(True, slots[1:] != slots[:-1]))
        qs = [PERCENTILES[a] for a in self._percentiles]
        for lo, hi in zip(bounds.tolist(), [*bounds[1:].tolist(), slots.size], strict=True):
            got = np.percentile(vals[lo:hi], qs, method="linear")
            for a, value in zip(self._percentiles, got.tolist(), strict=True):
                out[a][slots[lo]] = value
        return out

    def _counter_values(self, n: int) -> tuple[F64, F64]:
        p = self._pairs
        size = p.size
        slot, inc, dt, cnt = p["slot"][:size], p["inc"][:size], p["dt"][:size], p["n"][:size]
        has_inc = cnt > 0
        has_rate = has_inc & (dt > 0)
        increase = np.bincount(slot[has_inc], weights=inc[has_inc], minlength=n).astype(np.float64)
        rates = inc[has_rate] / dt[has_rate] * 1e9
        rate = np.bincount(slot[has_rate], weights=rates, minlength=n).astype(np.float64)
        increase[np.bincount(slot[has_inc], minlength=n) == 0] = np.nan
        rate[np.bincount(slot[has_rate], minlength=n) == 0] = np.nan
        return rate, increase

    def rows(self) -> list[tuple[Cell, ...]]:
        """The answer: one row per (group, metric field, bucket), sorted by those."""
        n = self._state.size
        st = {k: v[:n] for k, v in self._state.arrays.items()}
        count = st["count"]
        empty = count == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            values: dict[str, F64 | I64] = {
                "mean": st["sum"] / count,
                "min": st["min"],
                "max": st["max"],
                "sum": st["sum"],
                "count": count,
                "last": st["last_v"],
            }
        values.update(self._percentile_values(n))
        self._fold_held_counters()
        if self._counters:
            values["rate"], values["increase"] = self._counter_values(n)
        columns: list[list[Cell]] = []
        for a in self.aggs:
            col = values[a]
            if a == "count":
                columns.append([int(x) for x in col.tolist()])
                continue
            col = np.where(empty, np.nan, col.astype(np.float64))
            columns.append([None if x != x else x for x in col.tolist()])
        rows: list[tuple[Cell, ...]] = []
        order = sorted(range(n), key=self._sort_key)
        for slot in order:
            base, bucket = self._slot_keys[slot]
            group, field = self._base_keys[base]
            unit, kind = self._base_meta[base]
            cells: list[Cell] = [*group, field]
            if self.step_ns is not None:
                cells.append(None if bucket is None else bucket * self.step_ns)
            cells += [unit, kind]
            for a, cells_of in zip(self.aggs, columns, strict=True):
                gauge = a in COUNTER_AGGREGATIONS and kind != "counter"
                cells.append(None if gauge else cells_of[slot])
            rows.append(tuple(cells))
        return rows

    def _sort_key(self, slot: int) -> tuple[Any, ...]:
        base, bucket = self._slot_keys[slot]
        group, field = self._base_keys[base]
        return (*((v is None, v if v is not None else 0) for v in group), field, bucket or 0)


class SeriesCollector:
    """Keeps the raw selected samples of every (host, metric), within the memory budget."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget
        self.samples = 0
        self._parts: dict[tuple[str, str], list[tuple[I64, F64]]] = {}
        self._meta: dict[tuple[str, str], tuple[str, str]] = {}

    def add(self, hp: HostPlan, snap: ProfileSnapshot) -> int:
        """Keep a copy of the (trimmed) snapshot's samples; return how many."""
        n = snap.sample_count
        if self.budget is not None:
            self.budget.hold(16 * n, "raw samples")
        self.samples += n
        for m in snap.metrics:
            key = (hp.host, m.name)
            self._meta.setdefault(key, (m.kind, m.unit))
            self._parts.setdefault(key, []).append((m.timestamps.copy(), m.values.copy()))
        return n

    def series(self) -> list[Series]:
        """Every series, sorted by host then metric."""
        out = []
        for key in sorted(self._parts):
            parts = self._parts[key]
            kind, unit = self._meta[key]
            ts = np.concatenate([p[0] for p in parts])
            values = np.concatenate([p[1] for p in parts])
            if ts.size > 1 and bool(np.any(ts[1:] < ts[:-1])):  # windows overlapped: by time
                order = np.argsort(ts, kind="stable")
                ts, values = ts[order], values[order]
            out.append(
                Series(
                    host=key[0],
                    metric=key[1],
                    kind=kind,
                    unit=unit,
                    timestamps=ts,
                    values=values,
                )
            )
        return out
