"""Evaluate the supported PromQL subset over a step grid, vectorized per series.

A range query is the instant query evaluated at ``start, start + step, ... <= end``
(Prometheus's definition); here every node is evaluated for all steps at once: a
scalar is one value per step, an instant vector a list of series each holding one
value per step and where it is present. Semantics follow Prometheus 3
(``promql/engine.go``): lookback ``(t - 5m, t]``, a stale marker ends a series,
``__name__`` dropped by functions (but ``last_over_time``) and arithmetic, vector
matching on all labels but ``__name__`` unless ``on``/``ignoring`` say otherwise.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from snapcloud.errors import QueryExecutionError, QueryTimeout, TooManySamples, ValidationError
from snapcloud.promql._ast import (
    Aggregate,
    Binary,
    Expr,
    Function,
    MatrixSelector,
    Negate,
    Number,
    VectorSelector,
    parse,
    selectors,
    value_type,
)
from snapcloud.promql._functions import RANGE_IMPLS, quantile

__all__ = [
    "DEFAULT_LOOKBACK_NS",
    "STALE_NAN_BITS",
    "Evaluator",
    "Limits",
    "QueryValue",
    "RawSeries",
    "SeriesSource",
    "StepSeries",
    "is_stale",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs

DEFAULT_LOOKBACK_NS = 5 * 60 * 10**9
#: Prometheus's staleness marker: a NaN with this exact bit pattern.
STALE_NAN_BITS = 0x7FF0000000000002
MAX_STEPS = 11_000


def is_stale(values: F64) -> B:
    """Which values are Prometheus staleness markers (not every NaN: that bit pattern)."""
    stale: B = np.asarray(values, dtype=np.float64).view(np.uint64) == STALE_NAN_BITS
    return stale


@dataclass
class RawSeries:
    """The samples a selector read for one series: labels with ``__name__``, ns times."""

    labels: dict[str, str]
    timestamps: I64
    values: F64


class SeriesSource(Protocol):
    """Where selectors read samples: ``[start_ns, end_ns)`` of every matching series."""

    def select(self, selector: VectorSelector, start_ns: int, end_ns: int) -> list[RawSeries]:
        """The series ``selector``'s matchers select, their samples in the range."""
        ...


@dataclass(frozen=True)
class Limits:
    """Per-query limits: samples loaded, seconds, and the lookback delta."""

    max_samples: int = 50_000_000
    timeout_s: float = 120.0
    lookback_ns: int = DEFAULT_LOOKBACK_NS


@dataclass
class StepSeries:
    """One series of an instant vector over the steps: a value where ``present``."""

    labels: Labels
    values: F64
    present: B
    drop_name: bool = False


@dataclass
class QueryValue:
    """What a query returned: a scalar per step, series per step, or (instant query of a
    range selector) raw samples per series."""

    kind: Literal["scalar", "vector", "matrix"]
    times_ns: I64
    scalar: F64 | None = None
    series: list[StepSeries] = field(default_factory=list)
    raw: list[RawSeries] = field(default_factory=list)
    samples: int = 0


def _labels(d: dict[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in d.items() if v != ""))


def _without_name(labels: Labels) -> Labels:
    return tuple(p for p in labels if p[0] != "__name__")


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise QueryTimeout(f"query timed out in expression evaluation after {self.seconds} s")


class Evaluator:
    """Evaluates PromQL over a ``SeriesSource``; one instance may serve many queries."""

    def __init__(self, source: SeriesSource, limits: Limits | None = None) -> None:
        self.source = source
        self.limits = limits or Limits()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ entry points

    def instant(self, query: str | Expr, time_ns: int) -> QueryValue:
        """Evaluate at one time. Raises ``ValidationError`` (bad query, unsupported
        construct), ``QueryExecutionError`` (and its ``TooManySamples``, ``QueryTimeout``)."""
        expr = parse(query) if isinstance(query, str) else query
        return self._run(expr, np.array([time_ns], dtype=np.int64), time_ns, time_ns, True)

    def range(self, query: str | Expr, start_ns: int, end_ns: int, step_ns: int) -> QueryValue:
        """Evaluate at ``start, start + step, ... <= end`` (at most 11,000 steps)."""
        if step_ns <= 0:
            raise ValidationError(
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer",
                field="step",
            )
        if end_ns < start_ns:
            raise ValidationError("end timestamp must not be before start time", field="end")
        if (end_ns - start_ns) // step_ns > MAX_STEPS:
            raise ValidationError(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing "
                "the query resolution (?step=XX)",
                field="step",
            )
        expr = parse(query) if isinstance(query, str) else query
        if value_type(expr) == "matrix":
            raise ValidationError(
                'invalid expression type "range vector" for range query, must be Scalar or '
                "instant Vector",
                field="query",
            )
        times = np.arange(start_ns, end_ns + 1, step_ns, dtype=np.int64)
        return self._run(expr, times, start_ns, end_ns, False)

    # ------------------------------------------------------------------ evaluation

    def _run(self, expr: Expr, times: I64, start: int, end: int, instant: bool) -> QueryValue:
        run = _Run(self, times, start, end, _Deadline(self.limits.timeout_s))
        run.load(expr)
        if isinstance(expr, MatrixSelector):
            raw = run.matrix_raw(expr)
            return QueryValue("matrix", times, raw=raw, samples=run.samples)
        if value_type(expr) == "scalar":
            return QueryValue("scalar", times, scalar=run.scalar(expr), samples=run.samples)
        series = run.vector(expr)
        out = []
        seen: set[Labels] = set()
        for s in series:
            labels = _without_name(s.labels) if s.drop_name else s.labels
            if labels in seen:
                raise QueryExecutionError("vector cannot contain metrics with the same labelset")
            seen.add(labels)
            if s.present.any():
                out.append(StepSeries(labels, s.values, s.present))
        if not (isinstance(expr, Aggregate) and expr.op in ("topk", "bottomk") and instant):
            out.sort(key=lambda s: s.labels)
        return QueryValue("vector", times, series=out, samples=run.samples)


class _Run:
    """The state of one evaluation: the steps, the loaded series, the sample count."""

    def __init__(
        self, ev: Evaluator, times: I64, start: int, end: int, deadline: _Deadline
    ) -> None:
        self.ev = ev
        self.times = times
        self.start = start
        self.end = end
        self.deadline = deadline
        self.samples = 0
        self.loaded: dict[VectorSelector, list[RawSeries]] = {}

    def refs(self, sel: VectorSelector) -> I64:
        """Each step's reference time of ``sel``: its ``@`` time or the step, minus offset."""
        if sel.at is None:
            base = self.times
        else:
            at = {"start": self.start, "end": self.end}.get(sel.at.kind, sel.at.ns)
            base = np.full(self.times.size, at, dtype=np.int64)
        return base - sel.offset_ns

    def load(self, expr: Expr) -> None:
        """Read every selector's samples once, for the union of the windows it needs."""
        lookback = self.ev.limits.lookback_ns
        spans: dict[VectorSelector, tuple[int, int]] = {}
        for sel, range_ns in selectors(expr):
            refs = self.refs(sel)
            back = range_ns if range_ns else lookback
            lo, hi = int(refs.min()) - back + 1, int(refs.max()) + 1
            have = spans.get(sel)
            spans[sel] = (lo, hi) if have is None else (min(lo, have[0]), max(hi, have[1]))
        for sel, (lo, hi) in spans.items():
            found = self.ev.source.select(sel, lo, hi)
            self.samples += sum(int(s.timestamps.size) for s in found)
            if self.samples > self.ev.limits.max_samples:
                raise TooManySamples(
                    "query processing would load too many samples into memory: over "
                    f"{self.ev.limits.max_samples} (the per-query limit)"
                )
            self.deadline.check()
            self.loaded[sel] = found

    # ------------------------------------------------------------------ node kinds

    def scalar(self, expr: Expr) -> F64:
        if isinstance(expr, Number):
            return np.full(self.times.size, expr.value)
        if isinstance(expr, Negate):
            return -self.scalar(expr.expr)
        if isinstance(expr, Binary):
            return _arith(expr.op, self.scalar(expr.lhs), self.scalar(expr.rhs))
        raise QueryExecutionError(f"expected a scalar expression, got {type(expr).__name__}")

    def vector(self, expr: Expr) -> list[StepSeries]:
        self.deadline.check()
        if isinstance(expr, VectorSelector):
            return self.select(expr)
        if isinstance(expr, Negate):
            return [
                StepSeries(s.labels, -s.values, s.present, True) for s in self.vector(expr.expr)
            ]
        if isinstance(expr, Function):
            return self.function(expr)
        if isinstance(expr, Aggregate):
            return self.aggregate(expr)
        if isinstance(expr, Binary):
            return self.binary(expr)
        raise QueryExecutionError(f"expected an instant vector, got {type(expr).__name__}")

    def select(self, sel: VectorSelector) -> list[StepSeries]:
        refs = self.refs(sel)
        lookback = self.ev.limits.lookback_ns
        out = []
        for raw in self.loaded.get(sel, []):
            ts, vs = raw.timestamps, raw.values
            idx = np.searchsorted(ts, refs, side="right") - 1
            ok = idx >= 0
            safe = np.where(ok, idx, 0)
            if ts.size:
                ok &= ts[safe] > refs - lookback
                vals = vs[safe]
                ok &= ~is_stale(vals)
            else:
                vals = np.full(refs.size, np.nan)
            out.append(StepSeries(_labels(raw.labels), np.where(ok, vals, np.nan), ok))
        return out

    def matrix_raw(self, m: MatrixSelector) -> list[RawSeries]:
        ref = int(self.refs(m.vector)[0])
        out = []
        for raw in self.loaded.get(m.vector, []):
            keep = (raw.timestamps > ref - m.range_ns) & (raw.timestamps <= ref)
            keep &= ~is_stale(raw.values)
            if keep.any():
                out.append(RawSeries(raw.labels, raw.timestamps[keep], raw.values[keep]))
        out.sort(key=lambda r: _labels(r.labels))
        return out

    def function(self, f: Function) -> list[StepSeries]:
        impl = RANGE_IMPLS[f.name]
        param = self.scalar(f.param) if f.param is not None else None
        refs = self.refs(f.arg.vector)
        out = []
        for raw in self.loaded.get(f.arg.vector, []):
            fresh = ~is_stale(raw.values)
            values, present = impl(
                raw.timestamps[fresh], raw.values[fresh], refs, f.arg.range_ns, param
            )
            labels = _labels(raw.labels)
            out.append(StepSeries(labels, values, present, f.name != "last_over_time"))
        return out

    # ------------------------------------------------------------------ aggregation

    def aggregate(self, a: Aggregate) -> list[StepSeries]:
        inputs = self.vector(a.expr)
        param = self.scalar(a.param) if a.param is not None else None
        groups: dict[Labels, list[StepSeries]] = {}
        for s in inputs:
            groups.setdefault(_group_key(s, a), []).append(s)
        out: list[StepSeries] = []
        for key, members in groups.items():
            self.deadline.check()
            values = np.vstack([m.values for m in members])
            present = np.vstack([m.present for m in members])
            if a.op in ("topk", "bottomk"):
                assert param is not None
                out.extend(_top(members, values, present, param, a.op == "topk"))
                continue
            out.append(StepSeries(key, *_reduce_group(a.op, values, present, param)))
        return out

    # ------------------------------------------------------------------ binary operators

    def binary(self, b: Binary) -> list[StepSeries]:
        lt, rt = value_type(b.lhs), value_type(b.rhs)
        if lt == "scalar":
            scalar = self.scalar(b.lhs)
            return [
                StepSeries(s.labels, _arith(b.op, scalar, s.values), s.present, True)
                for s in self.vector(b.rhs)
            ]
        if rt == "scalar":
            scalar = self.scalar(b.rhs)
            return [
                StepSeries(s.labels, _arith(b.op, s.values, scalar), s.present, True)
                for s in self.vector(b.lhs)
            ]
        return _match(b, self.vector(b.lhs), self.vector(b.rhs))


def _arith(op: str, a: F64, b: F64) -> F64:
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return np.true_divide(a, b)
        if op == "%":
            return np.fmod(a, b)  # Go's math.Mod: the sign of the dividend
        if op == "^":
            return np.power(a, b)
    raise QueryExecutionError(f"operator {op!r} is not arithmetic")


def _group_key(s: StepSeries, a: Aggregate) -> Labels:
    if a.without:
        drop = {*a.labels, "__name__"}
        return tuple(p for p in s.labels if p[0] not in drop)
    keep = set(a.labels)
    return tuple(p for p in s.labels if p[0] in keep)


def _reduce_group(op: str, values: F64, present: B, param: F64 | None) -> tuple[F64, B]:
    any_present: B = np.asarray(present.any(axis=0), dtype=bool)
    count = present.sum(axis=0)
    masked = np.where(present, values, 0.0)
    with np.errstate(all="ignore"):
        if op == "sum":
            return masked.sum(axis=0), any_present
        if op == "count":
            return count.astype(np.float64), any_present
        if op == "avg":
            return masked.sum(axis=0) / count, any_present
        if op in ("min", "max"):
            fn = np.fmin if op == "min" else np.fmax
            return fn.reduce(np.where(present, values, np.nan), axis=0), any_present
    assert op == "quantile" and param is not None
    out = np.full(values.shape[1], np.nan)
    for i in np.flatnonzero(any_present).tolist():
        out[i] = quantile(float(param[i]), values[present[:, i], i])
    return out, any_present


def _top(
    members: Sequence[StepSeries], values: F64, present: B, k: F64, largest: bool
) -> list[StepSeries]:
    # Rank per step: present numbers first (largest or smallest first), then NaNs.
    nan = np.isnan(values)
    cls = np.where(present, np.where(nan, 1, 0), 2)
    key = np.where(nan | ~present, 0.0, -values if largest else values)
    order = np.lexsort((key, cls), axis=0)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(len(members))[:, None], axis=0)
    kk = np.array([0 if math.isnan(x) else int(min(x, len(members))) for x in k.tolist()])
    chosen = present & (rank < kk[None, :])
    return [StepSeries(m.labels, m.values, chosen[i], m.drop_name) for i, m in enumerate(members)]


def _signature(labels: Labels, on: bool, names: tuple[str, ...]) -> Labels:
    if on:
        keep = set(names)
        return tuple(p for p in labels if p[0] in keep)
    drop = {*names, "__name__"}
    return tuple(p for p in labels if p[0] not in drop)


def _result_labels(lhs: Labels, rhs: Labels, b: Binary) -> Labels:
    out = dict(_without_name(lhs))
    if b.card == "one-to-one":
        if b.on:
            keep = set(b.labels)
            out = {k: v for k, v in out.items() if k in keep}
        else:
            for name in b.labels:
                out.pop(name, None)
    one = dict(rhs)
    for name in b.include:
        if one.get(name):
            out[name] = one[name]
        else:
            out.pop(name, None)
    return tuple(sorted(out.items()))


def _match(b: Binary, lhs: list[StepSeries], rhs: list[StepSeries]) -> list[StepSeries]:
    """Vector-vector arithmetic, matched per step as Prometheus's ``VectorBinop``."""
    many, one = (lhs, rhs) if b.card != "one-to-many" else (rhs, lhs)
    by_sig: dict[Labels, list[StepSeries]] = {}
    for s in one:
        by_sig.setdefault(_signature(s.labels, b.on, b.labels), []).append(s)
    out: dict[Labels, StepSeries] = {}
    for sig, ones in by_sig.items():
        if len(ones) > 1 and (np.vstack([o.present for o in ones]).sum(axis=0) > 1).any():
            side = "right" if b.card != "one-to-many" else "left"
            raise QueryExecutionError(
                f"found duplicate series for the match group {dict(sig)} on the {side} "
                "hand-side of the operation; many-to-many matching not allowed: matching "
                "labels must be unique on one side"
            )
    matched_count: dict[Labels, I64] = {}
    for s in many:
        sig = _signature(s.labels, b.on, b.labels)
        for o in by_sig.get(sig, []):
            both = s.present & o.present
            if not both.any():
                continue
            if b.card == "one-to-one":
                seen = matched_count.setdefault(sig, np.zeros(both.size, dtype=np.int64))
                seen += both
                if (seen > 1).any():
                    raise QueryExecutionError(
                        "multiple matches for labels: many-to-one matching must be explicit "
                        "(group_left/group_right)"
                    )
            a, c = (s.values, o.values) if b.card != "one-to-many" else (o.values, s.values)
            labels = _result_labels(s.labels, o.labels, b)
            values = np.where(both, _arith(b.op, a, c), np.nan)
            prev = out.get(labels)
            if prev is not None:
                if (prev.present & both).any():
                    raise QueryExecutionError(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                    )
                values = np.where(both, values, prev.values)
                both = both | prev.present
            out[labels] = StepSeries(labels, values, both)
    return list(out.values())
