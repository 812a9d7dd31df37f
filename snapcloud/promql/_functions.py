"""Range functions over one series, vectorized over the evaluation steps.

Each function takes a series' samples (``ts`` in ns, ascending; ``vs``; stale
markers already removed), the reference times of the steps (``refs``: evaluation
time minus offset) and the range, and returns ``(values, present)`` per step. A
window is ``(ref - range, ref]`` (left-open, as Prometheus 3). The arithmetic is
Prometheus's (``promql/functions.go``): ``extrapolatedRate`` for rate, increase and
delta, the last two samples for irate, least squares for deriv, linear
interpolation between closest ranks (NaN sorting first) for quantiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

__all__ = ["RANGE_IMPLS", "quantile", "windows"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Result = tuple[F64, npt.NDArray[np.bool_]]
_CHUNK = 1 << 20  # window elements expanded at once (bounds memory for long ranges)


def windows(ts: I64, refs: I64, range_ns: int) -> tuple[I64, I64]:
    """``(lo, hi)``: the samples ``ts[lo:hi]`` of each step's window ``(ref - range, ref]``."""
    lo = np.searchsorted(ts, refs - range_ns, side="right").astype(np.int64)
    hi = np.searchsorted(ts, refs, side="right").astype(np.int64)
    return lo, hi


def _expanded(lo: I64, hi: I64) -> Iterator[tuple[I64, I64, I64, I64]]:
    """Chunks of windows as flat sample indices: ``(which windows, lens, starts, idx)``
    where ``idx`` lists each window's samples in order (``starts`` into ``idx``)."""
    lens = hi - lo
    todo = np.flatnonzero(lens > 0)
    i = 0
    while i < todo.size:
        total = np.cumsum(lens[todo[i:]])
        j = i + max(1, int(np.searchsorted(total, _CHUNK, side="right")))
        sel = todo[i:j]
        ln = lens[sel]
        starts = np.cumsum(ln) - ln
        idx = np.repeat(lo[sel] - starts, ln) + np.arange(int(ln.sum()))
        yield sel, ln, starts, idx
        i = j


def _reduce(
    lo: I64, hi: I64, vs: F64, fn: Callable[[F64, I64, I64, I64], F64], *, min_n: int = 1
) -> Result:
    out = np.full(lo.size, np.nan)
    n = hi - lo
    for sel, ln, starts, idx in _expanded(lo, hi):
        out[sel] = fn(vs[idx], ln, starts, idx)
    return out, n >= min_n


def _sum(x: F64, ln: I64, starts: I64, idx: I64) -> F64:
    return np.add.reduceat(x, starts)


def _avg(x: F64, ln: I64, starts: I64, idx: I64) -> F64:
    return np.add.reduceat(x, starts) / ln


def _min(x: F64, ln: I64, starts: I64, idx: I64) -> F64:
    return np.fmin.reduceat(x, starts)  # NaN only when every sample is NaN


def _max(x: F64, ln: I64, starts: I64, idx: I64) -> F64:
    return np.fmax.reduceat(x, starts)


def _stddev(x: F64, ln: I64, starts: I64, idx: I64) -> F64:
    mean = np.add.reduceat(x, starts) / ln
    dev = x - np.repeat(mean, ln)
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.add.reduceat(dev * dev, starts) / ln)


def _over_time(fn: Callable[[F64, I64, I64, I64], F64]) -> Callable[..., Result]:
    def impl(ts: I64, vs: F64, refs: I64, range_ns: int, param: F64 | None = None) -> Result:
        lo, hi = windows(ts, refs, range_ns)
        return _reduce(lo, hi, vs, fn)

    return impl


def _count(ts: I64, vs: F64, refs: I64, range_ns: int, param: F64 | None = None) -> Result:
    lo, hi = windows(ts, refs, range_ns)
    n = hi - lo
    return n.astype(np.float64), n > 0


def _last(ts: I64, vs: F64, refs: I64, range_ns: int, param: F64 | None = None) -> Result:
    lo, hi = windows(ts, refs, range_ns)
    ok = hi > lo
    out = np.full(lo.size, np.nan)
    out[ok] = vs[hi[ok] - 1]
    return out, ok


def quantile(q: float, values: F64) -> float:
    """Prometheus's ``quantile``: NaN sorts first, linear interpolation between ranks."""
    if values.size == 0 or np.isnan(q):
        return float("nan")
    if q < 0:
        return float("-inf")
    if q > 1:
        return float("inf")
    nan = np.isnan(values)
    ordered = np.concatenate([values[nan], np.sort(values[~nan])])
    rank = q * (ordered.size - 1)
    lower = max(0, int(np.floor(rank)))
    upper = min(ordered.size - 1, lower + 1)
    weight = rank - np.floor(rank)
    return float(ordered[lower] * (1 - weight) + ordered[upper] * weight)


def _quantile(ts: I64, vs: F64, refs: I64, range_ns: int, param: F64 | None = None) -> Result:
    assert param is not None
    lo, hi = windows(ts, refs, range_ns)
    out = np.full(lo.size, np.nan)
    ok = hi > lo
    for i in np.flatnonzero(ok).tolist():
        out[i] = quantile(float(param[i]), vs[lo[i] : hi[i]])
    return out, ok


def _extrapolated(counter: bool, rate: bool) -> Callable[..., Result]:
    """``extrapolatedRate`` of Prometheus: rate, increase (counters) and delta (gauges)."""

    def impl(ts: I64, vs: F64, refs: I64, range_ns: int, param: F64 | None = None) -> Result:
        lo, hi = windows(ts, refs, range_ns)
        ok = hi - lo >= 2
        out = np.full(lo.size, np.nan)
        w = np.flatnonzero(ok)
        if not w.size:
            return out, ok
        first, last = lo[w], hi[w] - 1
        first_v, last_v = vs[first], vs[last]
        result = last_v - first_v
        if counter:
            _add_resets(vs, first, last, result)
        first_t, last_t = ts[first], ts[last]
        start = refs[w] - range_ns
        to_start = (first_t - start) / 1e9
        to_end = (refs[w] - last_t) / 1e9
        sampled = (last_t - first_t) / 1e9
        avg_gap = sampled / (last - first)
        threshold = avg_gap * 1.1
        to_start = np.where(to_start >= threshold, avg_gap / 2, to_start)
        if counter:
            with np.errstate(divide="ignore", invalid="ignore"):
                to_zero = np.where(
                    (result > 0) & (first_v >= 0), sampled * (first_v / result), to_start
                )
            to_start = np.where(to_zero < to_start, to_zero, to_start)
        to_end = np.where(to_end >= threshold, avg_gap / 2, to_end)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = (sampled + to_start + to_end) / sampled
        if rate:
            factor = factor / (range_ns / 1e9)
        out[w] = result * factor
        return out, ok

    return impl


def _add_resets(vs: F64, first: I64, last: I64, result: F64) -> None:
    """Add, in sample order as Prometheus does, the value before each drop in a window."""
    resets = np.flatnonzero(vs[1:] < vs[:-1]) + 1  # sample i is lower than sample i - 1
    if not resets.size:
        return
    a = np.searchsorted(resets, first, side="right")
    b = np.searchsorted(resets, last, side="right")
    for k in np.flatnonzero(b > a).tolist():
        total = float(result[k])
        for i in resets[a[k] : b[k]].tolist():
            total += float(vs[i - 1])
        result[k] = total


def _irate(ts: I64, vs: F64, refs: I64, range_ns: int, param: F64 | None = None) -> Result:
    lo, hi = windows(ts, refs, range_ns)
    out = np.full(lo.size, np.nan)
    ok = hi - lo >= 2
    w = np.flatnonzero(ok)
    last, prev = hi[w] - 1, hi[w] - 2
    dt = ts[last] - ts[prev]
    keep = dt != 0
    v1, v0 = vs[last], vs[prev]
    with np.errstate(invalid="ignore"):
        value = np.where(v1 < v0, v1, v1 - v0)  # a drop is a counter reset
    out[w[keep]] = value[keep] / (dt[keep] / 1e9)
    ok[w[~keep]] = False
    return out, ok


def _deriv(ts: I64, vs: F64, refs: I64, range_ns: int, param: F64 | None = None) -> Result:
    lo, hi = windows(ts, refs, range_ns)

    def slope(y: F64, ln: I64, starts: I64, idx: I64) -> F64:
        x = (ts[idx] - np.repeat(ts[idx[starts]], ln)) / 1e9
        n = ln.astype(np.float64)
        sx, sy = np.add.reduceat(x, starts), np.add.reduceat(y, starts)
        sxy, sx2 = np.add.reduceat(x * y, starts), np.add.reduceat(x * x, starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (sxy - sx * sy / n) / (sx2 - sx * sx / n)
            const = np.maximum.reduceat(y, starts) == np.minimum.reduceat(y, starts)
        first = y[starts]
        return np.where(const, np.where(np.isinf(first), np.nan, 0.0), out)

    return _reduce(lo, hi, vs, slope, min_n=2)


RANGE_IMPLS: dict[str, Callable[..., Result]] = {
    "rate": _extrapolated(counter=True, rate=True),
    "increase": _extrapolated(counter=True, rate=False),
    "delta": _extrapolated(counter=False, rate=False),
    "irate": _irate,
    "deriv": _deriv,
    "avg_over_time": _over_time(_avg),
    "min_over_time": _over_time(_min),
    "max_over_time": _over_time(_max),
    "sum_over_time": _over_time(_sum),
    "count_over_time": _count,
    "last_over_time": _last,
    "quantile_over_time": _quantile,
    "stddev_over_time": _over_time(_stddev),
}
