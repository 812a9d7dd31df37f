"""Archive aggregates against a per-bucket reference written the slow, obvious way."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcloud.codec import META_RESOLUTION, META_TIER, resolution_of
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.retention import Downsampler

NS = 10**9


def _reference(
    ts: list[int], vs: list[float], res: int, counter: bool
) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    prev = None
    for t, v in zip(ts, vs, strict=True):
        b = (t // res) * res
        row = out.setdefault(
            b,
            {
                "count": 0,
                "sum": 0.0,
                "min": math.nan,
                "max": math.nan,
                "last": math.nan,
                "first": math.nan,
                "increase": 0.0,
            },
        )
        if math.isnan(v):
            continue
        row["count"] += 1
        row["sum"] += v
        row["min"] = v if math.isnan(row["min"]) else min(row["min"], v)
        row["max"] = v if math.isnan(row["max"]) else max(row["max"], v)
        row["last"] = v
        if math.isnan(row["first"]):
            row["first"] = v
        if counter and prev is not None:
            row["increase"] += v - prev if v >= prev else v
        prev = v
    return out


def _same(a: float, b: float, exact: bool = True) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b if exact else abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 400), st.one_of(st.floats(-1e6, 1e6), st.just(math.nan))),
        min_size=1,
        max_size=120,
    ),
    cuts=st.lists(st.integers(1, 119), max_size=4),
    counter=st.booleans(),
    res_s=st.sampled_from([1, 7, 60]),
)
def test_aggregates_match_reference_however_groups_are_cut(
    data: list[tuple[int, float]], cuts: list[int], counter: bool, res_s: int
) -> None:
    steps = [d for d, _ in data]
    ts = (1_767_225_600 + np.cumsum(steps)).astype(np.int64) * NS
    vs = np.array([v for _, v in data], dtype=np.float64)
    bounds = sorted({0, len(ts), *(c for c in cuts if c < len(ts))})
    ds = Downsampler("h", [res_s * NS])
    for seq, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        metric = MetricSeries("m", ts[lo:hi], vs[lo:hi], kind="counter" if counter else "gauge")
        ds.add(
            [
                ProfileSnapshot(
                    "h", [metric], seq=seq, window_start=int(ts[lo]), window_end=int(ts[hi - 1]) + 1
                )
            ]
        )
    [(res, snap)] = ds.finish()
    assert res == res_s * NS and resolution_of(snap) == res_s * NS
    assert snap.metadata[META_TIER] == "archive" and snap.metadata[META_RESOLUTION] == res
    ref = _reference(ts.tolist(), vs.tolist(), res_s * NS, counter)
    got_ts = snap.metric("m:count").timestamps.tolist()
    assert got_ts == sorted(ref)
    aggs = ["count", "sum", "min", "max", "last"] + (["first", "increase"] if counter else [])
    assert sorted(m.name for m in snap.metrics) == sorted(f"m:{a}" for a in aggs)
    for agg in aggs:
        values = snap.metric(f"m:{agg}").values.tolist()
        for t, v in zip(got_ts, values, strict=True):
            exact = agg not in ("sum", "increase")
            assert _same(v, ref[t][agg], exact), (agg, t, v, ref[t][agg])


def test_fingerprints_and_resolutions_give_one_snapshot_each() -> None:
    ts = (1_767_225_600 + np.arange(7200)).astype(np.int64) * NS
    snaps = []
    for i in range(4):
        sl = slice(i * 1800, (i + 1) * 1800)
        snaps.append(
            ProfileSnapshot(
                "h",
                [MetricSeries("u", ts[sl], np.ones(1800) * i, unit="%")],
                seq=i,
                fingerprint="a" if i < 2 else "b",
                labels={"v": str(i)},
            )
        )
    ds = Downsampler("h", [3600 * NS, 60 * NS])
    ds.add(snaps[:3])
    ds.add(snaps[3:])
    out = ds.finish()
    assert [(r // NS, s.fingerprint, s.seq) for r, s in out] == [
        (60, "a", 0),
        (60, "b", 2),
        (3600, "a", 0),
        (3600, "b", 2),
    ]
    one_min_a = out[0][1]
    assert one_min_a.metric("u:count").values.sum() == 3600
    assert one_min_a.metric("u:sum").unit == "%" and one_min_a.metric("u:count").unit == ""
    assert one_min_a.metadata["snapcloud.source_last_seq"] == 1
    assert out[1][1].labels == {"v": "3"}  # the latest snapshot's labels
