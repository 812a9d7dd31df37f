"""Windows that overlap and timestamps that repeat: queries answer by time, exports keep
every sample, compaction cuts every snapshot back bit for bit (docs/architecture.md D2).

The data: samples with shuffled, repeated timestamps, cut into chunks stored one after
another (each chunk's windows overlap the earlier chunks'), so the stream holds the
same time range several times over. "By time" means: each series' samples merged by
timestamp, ties in the order they were stored (seq, then position).
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapcloud.backends import MemoryStore
from snapcloud.importers import cut_windows
from snapcloud.models import MetricSeries, SnapshotConfig, SnapshotQuery
from snapcloud.query import Selector, read_series, run_query
from snapcloud.retention import Compactor
from snapcloud.store import Repository

S = 10**9
T0 = 1_767_225_600 * S
WINDOW = 10 * S
CONFIG = SnapshotConfig(
    keyframe_interval=3,
    raw_max_age_ns=60 * S,
    compressed_max_age_ns=10**6 * S,
    archive_max_age_ns=10**6 * S,
)
AGGS = ("count", "sum", "mean", "min", "max", "last", "p50", "p90", "increase", "rate")

Sample = tuple[int, float]  # (timestamp, value)


def store(chunks: list[dict[str, list[Sample]]]) -> tuple[Repository, list[dict[str, Any]]]:
    """Each chunk (metric -> samples in file order) cut into windows and appended after
    the ones before; returns the repository and, per metric, every sample with its
    storage order (the reference)."""
    repo = Repository(MemoryStore(), CONFIG)
    stream = repo.stream("h", create=True)
    stored: list[dict[str, Any]] = []
    for chunk in chunks:
        series = []
        for name, rows in chunk.items():
            if not rows:
                continue
            ts = np.array([t for t, _ in rows], dtype=np.int64)
            vs = np.array([v for _, v in rows], dtype=np.float64)
            order = np.argsort(ts, kind="stable")  # what the importer does with a file
            kind = "counter" if name.endswith("_total") else "gauge"
            series.append(MetricSeries(name, ts[order], vs[order], kind=kind))
        for snap in cut_windows("h", series, window_ns=WINDOW):
            entry = stream.append(snap)
            for m in snap.metrics:
                for pos, (t, v) in enumerate(zip(m.timestamps, m.values, strict=True)):
                    stored.append(
                        {"metric": m.name, "t": int(t), "v": float(v), "key": (entry.seq, pos)}
                    )
    return repo, stored


def by_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["t"], r["key"]))


def reference(stored: list[dict[str, Any]], name: str, step: int | None) -> dict[Any, dict]:
    """Every aggregation of one metric, per bucket, from the stored samples by time."""
    rows = by_time([r for r in stored if r["metric"] == name])
    out: dict[Any, dict] = {}
    buckets = sorted({None if step is None else r["t"] // step for r in rows}, key=str)
    for b in buckets:
        inside = [r for r in rows if step is None or r["t"] // step == b]
        vals = np.array([r["v"] for r in inside])
        ok = ~np.isnan(vals)
        got: dict[str, Any] = {"count": int(ok.sum())}
        if ok.any():
            v = vals[ok]
            got.update(
                sum=float(v.sum()),
                mean=float(v.mean()),
                min=float(v.min()),
                max=float(v.max()),
                last=float(v[-1]),
                p50=float(np.percentile(v, 50)),
                p90=float(np.percentile(v, 90)),
            )
        out[b] = got
    if name.endswith("_total"):  # rises between consecutive valid samples, by time
        valid = [r for r in rows if not np.isnan(r["v"])]
        inc: dict[Any, float] = {}
        span: dict[Any, float] = {}
        for prev, cur in itertools.pairwise(valid):
            b = None if step is None else cur["t"] // step
            rise = cur["v"] - prev["v"] if cur["v"] >= prev["v"] else cur["v"]
            inc[b] = inc.get(b, 0.0) + rise
            span[b] = span.get(b, 0.0) + (cur["t"] - prev["t"])
        for b, got in out.items():
            got["increase"] = inc.get(b)
            got["rate"] = inc[b] / span[b] * 1e9 if span.get(b) else None
    return out


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-6))


def answer(repo: Repository, step: int | None) -> dict[tuple[str, Any], dict[str, Any]]:
    result = run_query(repo, Selector(), aggs=AGGS, step_ns=step, workers=2)
    out = {}
    for rec in result.records():
        out[(rec["metric"], rec.get("time") and rec["time"] // step if step else None)] = rec
    return out


def check(repo: Repository, stored: list[dict[str, Any]], step: int | None) -> None:
    got = answer(repo, step)
    for name in sorted({r["metric"] for r in stored}):
        for b, want in reference(stored, name, step).items():
            rec = got[(name, b)]
            assert rec["count"] == want["count"], (name, b)
            for agg in ("min", "max", "last", "p50", "p90"):
                assert rec[agg] == want.get(agg), (name, b, agg, rec[agg], want.get(agg))
            for agg in ("sum", "mean"):
                assert close(rec[agg], want.get(agg)), (name, b, agg, rec[agg], want.get(agg))
            if name.endswith("_total"):
                for agg in ("increase", "rate"):
                    assert close(rec[agg], want[agg]), (name, b, agg, rec[agg], want[agg])


def samples(repo: Repository) -> Counter[tuple[str, int, int]]:
    out: Counter[tuple[str, int, int]] = Counter()
    for snap in repo.stream("h").query(SnapshotQuery()):
        for m in snap.metrics:
            bits = m.values.view(np.int64).tolist()
            out.update(zip([m.name] * len(m), m.timestamps.tolist(), bits, strict=True))
    return out


def stored_multiset(stored: list[dict[str, Any]]) -> Counter[tuple[str, int, int]]:
    return Counter((r["metric"], r["t"], int(np.float64(r["v"]).view(np.int64))) for r in stored)


times = st.integers(0, 95).map(lambda k: T0 + k * S)  # 10 windows: many repeats
gauge_values = st.floats(-1e6, 1e6, allow_nan=False) | st.just(float("nan"))
counter_values = st.integers(0, 10_000).map(float)
chunk = st.fixed_dictionaries(
    {
        "load": st.lists(st.tuples(times, gauge_values), max_size=25),
        "bytes_total": st.lists(st.tuples(times, counter_values), max_size=25),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chunk, min_size=1, max_size=4), st.sampled_from([None, 7 * S, 30 * S]))
def test_property_overlapping_windows_answer_by_time(
    chunks: list[dict[str, list[Sample]]], step: int | None
) -> None:
    repo, stored = store(chunks)
    if not stored:
        return
    check(repo, stored, step)
    assert samples(repo) == stored_multiset(stored)
    series = {s.metric: s for s in read_series(repo, Selector(), workers=2).series}
    for name, s in series.items():  # raw series for plots: by time, ties in stored order
        rows = by_time([r for r in stored if r["metric"] == name])
        assert s.timestamps.tolist() == [r["t"] for r in rows]
        assert s.values.view(np.int64).tolist() == [
            int(np.float64(r["v"]).view(np.int64)) for r in rows
        ]
    before = {seq: repo.stream("h").get(seq) for seq in range(repo.stream("h").next_seq)}
    report = Compactor(repo.objects, CONFIG).run(T0 + 10**5 * S)
    assert report.problems == []
    compacted = Repository(repo.objects, CONFIG)
    stream = compacted.stream("h")
    tiers = {e.key.split("/", 1)[0] for e in stream.entries()}
    if len(before) > CONFIG.keyframe_interval:
        assert "compressed" in tiers  # sealed groups went to the compressed tier
    for seq, snap in before.items():  # cut back out bit for bit
        assert stream.get(seq) == snap
        assert stream.get(seq).checksum == snap.checksum
    assert samples(compacted) == stored_multiset(stored)
    check(compacted, stored, step)


def test_parquet_export_of_overlapping_windows_is_the_stored_multiset(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from snapcloud.query import export_parquet

    rng = np.random.default_rng(7)
    chunks = []
    for _ in range(3):
        ts = [int(T0 + k * S) for k in rng.integers(0, 120, 40)]
        chunks.append(
            {
                "load": [(t, float(v)) for t, v in zip(ts, rng.normal(size=40), strict=True)],
                "bytes_total": [(t, float(i)) for i, t in enumerate(sorted(ts))],
            }
        )
    repo, stored = store(chunks)
    export_parquet(repo, Selector(), str(tmp_path / "out"))
    table = pq.read_table(tmp_path / "out")
    got = Counter(
        zip(
            table.column("metric").to_pylist(),
            table.column("timestamp").cast("int64").to_pylist(),
            np.asarray(table.column("value").to_numpy()).view(np.int64).tolist(),
            strict=True,
        )
    )
    assert got == stored_multiset(stored)
