"""Fleet queries on the moto server, every aggregation checked against numpy on the raw input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from snapcloud.backends import CountingStore, GetResult, ObjectStore
from snapcloud.errors import (
    BackendError,
    MemoryExceeded,
    QueryIncomplete,
    RetryableBackendError,
    ValidationError,
)
from snapcloud.models import SnapshotConfig
from snapcloud.query import (
    AGGREGATIONS,
    LabelMatcher,
    QueryResult,
    Selector,
    plan_query,
    read_series,
    run_query,
)
from snapcloud.store import Repository
from tests.query.conftest import A100, MIN, T0, WINDOWS, Fleet

ALL = AGGREGATIONS
PCT = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


def _rises(ts: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counter rises between consecutive non-NaN samples (a drop restarts from 0),
    with their spans in ns and the timestamp of the later sample."""
    ok = ~np.isnan(v)
    t, v = ts[ok], v[ok]
    d = np.diff(v)
    return np.where(d >= 0, d, v[1:]), np.diff(t).astype(float), t[1:]


def _expected(values: np.ndarray, agg: str, ts: np.ndarray) -> float | int | None:
    """Pooled reference for one series' (or one group's concatenated) samples."""
    finite = values[~np.isnan(values)]
    if agg == "count":
        return int(finite.size)
    if not finite.size:
        return None
    if agg == "mean":
        return float(np.nanmean(values))
    if agg == "min":
        return float(np.nanmin(values))
    if agg == "max":
        return float(np.nanmax(values))
    if agg == "sum":
        return float(np.nansum(values))
    if agg == "last":
        return float(values[~np.isnan(values)][-1])
    if agg in PCT:
        return float(np.nanpercentile(values, PCT[agg], method="linear"))
    rise, span, _ = _rises(ts, values)
    if not rise.size:
        return None
    if agg == "increase":
        return float(rise.sum())
    return float(rise.sum() / (span.sum() / 1e9))


def _close(got: object, want: object, agg: str) -> None:
    if want is None:
        assert got is None, agg
    elif agg == "count":
        assert got == want
    else:
        assert got == pytest.approx(want, rel=1e-12, abs=1e-9), agg


def _rows(result: QueryResult) -> dict[tuple[object, ...], dict[str, object]]:
    keys = [*result.group_by, "metric", *(["time"] if result.step_ns else [])]
    return {tuple(r[k] for k in keys): r for r in result.records()}


def test_every_aggregation_per_series_matches_numpy(fleet: Fleet) -> None:
    start, end = T0 + 2 * MIN + 17 * 10**9, T0 + 11 * MIN
    metrics = ("gpu.0.power_avg_mw", "gpu.1.power_avg_mw", "disk.read_bytes", "net.rx_bytes")
    metrics += ("cpu.util",)
    sel = Selector(metrics=metrics, start_ns=start, end_ns=end)
    result = run_query(fleet.repo, sel, aggs=ALL, group_by=("host", "gpu"))
    rows = _rows(result)
    assert len(rows) == len(fleet.snaps) * len(metrics)
    for host in fleet.snaps:
        for metric in metrics:
            ts, vals = fleet.reference(host, metric, start, end)
            gpu = int(metric.split(".")[1]) if metric.startswith("gpu.") else None
            row = rows[(host, gpu, "gpu.*.power_avg_mw" if gpu is not None else metric)]
            assert row["kind"] == ("counter" if "bytes" in metric else "gauge")
            for agg in ALL:
                want = _expected(vals, agg, ts)
                if agg in ("rate", "increase") and row["kind"] == "gauge":
                    want = None
                _close(row[agg], want, agg)


def test_counter_reset_counts_the_restart_not_the_drop(fleet: Fleet) -> None:
    host = "gpu-node-0002"
    ts, vals = fleet.reference(host, "disk.read_bytes")
    assert (np.diff(vals) < 0).sum() == 1  # the fixture's reset
    result = run_query(
        fleet.repo,
        Selector(hosts=(host,), metrics=("disk.read_bytes",)),
        aggs=("increase", "rate", "max", "last"),
        group_by=("host",),
    )
    (row,) = result.records()
    before = vals[: 6 * 60]
    after = vals[6 * 60 :]
    # the rises before the reset, the restart itself (from 0 to the new value), then the rest
    want = (before[-1] - before[0]) + after[0] + (after[-1] - after[0])
    assert row["increase"] == pytest.approx(want, rel=1e-12)
    assert row["rate"] == pytest.approx(want / ((ts[-1] - ts[0]) / 1e9), rel=1e-12)
    assert row["increase"] > row["max"]  # a naive last - first would be negative


def test_pooled_groups_match_numpy_on_concatenated_samples(fleet: Fleet) -> None:
    sel = Selector(metrics=("gpu.*.power_avg_mw",), start_ns=T0 + 3 * MIN, end_ns=T0 + 9 * MIN)
    result = run_query(fleet.repo, sel, aggs=("mean", "min", "max", "sum", "count", "p90"))
    (row,) = result.records()
    assert row["metric"] == "gpu.*.power_avg_mw" and row["unit"] == "mW"
    pooled = np.concatenate(
        [
            fleet.reference(h, f"gpu.{g}.power_avg_mw", sel.start_ns, sel.end_ns)[1]
            for h in fleet.snaps
            for g in range(8)
        ]
    )
    assert np.isnan(pooled).any()
    for agg in ("mean", "min", "max", "sum", "count", "p90"):
        _close(row[agg], _expected(pooled, agg, np.zeros(0)), agg)


def test_group_by_label_and_fingerprint(fleet: Fleet) -> None:
    sel = Selector(metrics=("gpu.*.util_pct",))
    result = run_query(fleet.repo, sel, aggs=("mean", "count"), group_by=("gpu.model",))
    rows = {r["gpu.model"]: r for r in result.records()}
    assert set(rows) == {A100, "NVIDIA H100 80GB HBM3"}
    a100 = np.concatenate(
        [
            fleet.reference(h, f"gpu.{g}.util_pct")[1]
            for i, h in enumerate(sorted(fleet.snaps))
            if i % 2
            for g in range(8)
        ]
    )
    _close(rows[A100]["mean"], float(np.nanmean(a100)), "mean")
    fp = run_query(fleet.repo, sel, aggs=("count",), group_by=("fingerprint",))
    counts = {r["fingerprint"]: r["count"] for r in fp.records()}
    per_host = WINDOWS * 60 * 8
    assert counts == {"inference": 2 * per_host, "llm-train": 4 * per_host}


def test_step_buckets_match_numpy_per_bucket(fleet: Fleet) -> None:
    step = 150 * 10**9  # not a multiple of the window: buckets straddle snapshots
    host = "gpu-node-0002"
    sel = Selector(hosts=(host,), metrics=("disk.read_bytes", "gpu.1.power_avg_mw"))
    result = run_query(
        fleet.repo,
        sel,
        aggs=("mean", "count", "last", "p50", "increase", "rate"),
        group_by=("host",),
        step_ns=step,
    )
    rows = _rows(result)
    for metric, field in (
        ("disk.read_bytes", "disk.read_bytes"),
        ("gpu.1.power_avg_mw", "gpu.*.power_avg_mw"),
    ):
        ts, vals = fleet.reference(host, metric)
        buckets = ts // step
        rise, span, later = _rises(ts, vals)
        for b in np.unique(buckets):
            row = rows[(host, field, int(b) * step)]
            mask = buckets == b
            for agg in ("mean", "count", "last", "p50"):
                _close(row[agg], _expected(vals[mask], agg, ts[mask]), agg)
            if field == "disk.read_bytes":
                inb = later // step == b
                want_inc = float(rise[inb].sum()) if inb.any() else None
                _close(row["increase"], want_inc, "increase")
                if inb.any():
                    _close(row["rate"], rise[inb].sum() / (span[inb].sum() / 1e9), "rate")
            else:
                assert row["rate"] is None and row["increase"] is None
    assert result.records()[0]["time"] == int(T0 // step) * step


def test_all_nan_series_is_counted_zero_with_null_aggregates(fleet: Fleet) -> None:
    # host 2's GPU 1 power is NaN throughout window 3
    sel = Selector(
        hosts=("gpu-node-0002",),
        metrics=("gpu.1.power_avg_mw",),
        start_ns=T0 + 3 * MIN,
        end_ns=T0 + 4 * MIN,
    )
    (row,) = run_query(fleet.repo, sel, aggs=("count", "mean", "last", "p99")).records()
    assert row == {
        "metric": "gpu.*.power_avg_mw",
        "unit": "mW",
        "kind": "gauge",
        "count": 0,
        "mean": None,
        "last": None,
        "p99": None,
    }


def test_label_matchers_host_globs_and_fingerprints_select_hosts(fleet: Fleet) -> None:
    def hosts(**kw: Any) -> list[str]:
        return [
            hp.host for hp in plan_query(fleet.repo, Selector(metrics=("cpu.util",), **kw)).hosts
        ]

    assert hosts(where=(LabelMatcher.parse(f"gpu.model={A100}"),)) == [
        "gpu-node-0001",
        "gpu-node-0003",
        "gpu-node-0005",
    ]
    assert hosts(where=(LabelMatcher.parse("gpu.model!~.*H100.*"),)) == hosts(
        where=(LabelMatcher.parse("gpu.model=~NVIDIA A100.*"),)
    )
    assert hosts(where=(LabelMatcher.parse("gpu.model=~H100"),)) == []  # full match only
    assert hosts(where=(LabelMatcher.parse("rack=r1"), LabelMatcher.parse("gpu.model!=x"))) == [
        "gpu-node-0003",
        "gpu-node-0004",
        "gpu-node-0005",
    ]
    assert hosts(where=(LabelMatcher.parse("host=~.*000[12]"),)) == [
        "gpu-node-0001",
        "gpu-node-0002",
    ]
    assert hosts(hosts=("gpu-node-000[0-2]", "*5")) == [
        "gpu-node-0000",
        "gpu-node-0001",
        "gpu-node-0002",
        "gpu-node-0005",
    ]
    assert hosts(fingerprint="infer*") == ["gpu-node-0000", "gpu-node-0003"]
    assert hosts(hosts=("nope-*",)) == []
    res = run_query(
        fleet.repo,
        Selector(metrics=("cpu.util",), fingerprint="inference", end_ns=T0 + 2 * MIN),
        aggs=("count",),
        group_by=("host", "fingerprint"),
    )
    assert [(r["host"], r["fingerprint"], r["count"]) for r in res.records()] == [
        ("gpu-node-0000", "inference", 120),
        ("gpu-node-0003", "inference", 120),
    ]


class _Recorder:
    """An ObjectStore wrapper that records every key read and every prefix listed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.description = inner.description
        self.gets: list[str] = []
        self.lists: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str, **kw: Any) -> Any:
        self.gets.append(key)
        return self.inner.get(key, **kw)

    def list(self, prefix: str) -> Any:
        self.lists.append(prefix)
        return self.inner.list(prefix)

    def list_dirs(self, prefix: str) -> Any:
        self.lists.append(prefix)
        return self.inner.list_dirs(prefix)


def test_plan_reads_only_catalog_and_index_and_needed_objects(fleet: Fleet) -> None:
    sel = Selector(
        metrics=("gpu.*.power_avg_mw",),
        start_ns=T0 + 6 * MIN + 1,
        end_ns=T0 + 8 * MIN,
        where=(LabelMatcher.parse("cluster=synthetic"),),
    )
    recorder = _Recorder(fleet.repo.objects.inner)
    repo = Repository(recorder, fleet.repo.config)
    plan = plan_query(repo, sel)
    assert plan.catalog_reads == len(fleet.snaps)
    for hp in plan.hosts:
        assert [e.seq for e in hp.entries] == [6, 7]
        assert list(hp.bases) == [5]  # the keyframe of the group, read once
    assert not any(k.startswith("raw/") for k in recorder.gets)  # planning reads no data
    recorder.gets.clear()
    recorder.lists.clear()
    result = run_query(repo, sel, aggs=("mean",))
    st = result.stats
    assert st.objects == 3 * len(fleet.snaps)
    data = [k for k in recorder.gets if k.startswith("raw/")]
    assert len(data) == len(set(data)) == st.objects  # each object read once
    assert {k.rsplit("/", 1)[1][:12] for k in data} == {f"{s:012d}" for s in (5, 6, 7)}
    assert not any(p.startswith(("raw/", "compressed/", "archive/")) for p in recorder.lists)
    assert st.requests["get"] == plan.catalog_reads + plan.segment_reads + st.objects
    assert st.bytes_read > 0 and st.seconds > 0
    assert st.samples == 8 * (2 * 60 - 1) * len(fleet.snaps)


def test_raw_series_are_bit_exact(fleet: Fleet) -> None:
    sel = Selector(hosts=("gpu-node-0001",), metrics=("gpu.0.power_avg_mw", "net.*"))
    got = read_series(fleet.repo, sel)
    assert [s.metric for s in got] == ["gpu.0.power_avg_mw", "net.rx_bytes", "net.tx_bytes"]
    for s in got:
        ts, vals = fleet.reference("gpu-node-0001", s.metric)
        assert np.array_equal(s.timestamps, ts)
        assert s.values.tobytes() == vals.tobytes()


def _limited(limit: int) -> SnapshotConfig:
    return SnapshotConfig(keyframe_interval=5, max_query_memory_bytes=limit)


def test_memory_limit_raises_instead_of_truncating(fleet: Fleet) -> None:
    snapshot_bytes = max(s.raw_bytes for s in fleet.snaps["gpu-node-0000"])
    small = Repository(fleet.repo.objects.inner, _limited(4 * snapshot_bytes))
    sel = Selector(metrics=("gpu.*", "disk.*"), end_ns=T0 + 7 * MIN)
    with pytest.raises(MemoryExceeded, match="memory limit"):
        run_query(small, sel, aggs=("p50",), group_by=("host",))
    with pytest.raises(MemoryExceeded):
        read_series(small, sel)
    streamed = run_query(small, sel, aggs=("mean", "count"), group_by=("host",))
    full = run_query(fleet.repo, sel, aggs=("mean", "count"), group_by=("host",))
    assert streamed.rows == full.rows
    tiny = Repository(fleet.repo.objects.inner, _limited(snapshot_bytes))
    with pytest.raises(MemoryExceeded, match=r"need .* over the query memory limit"):
        run_query(tiny, sel, aggs=("mean",))


def test_results_do_not_depend_on_parallelism(fleet: Fleet) -> None:
    sel = Selector(
        metrics=("gpu.*.temp_c", "disk.*"), start_ns=T0 + 61 * 10**9, end_ns=T0 + 8 * MIN
    )
    kw = {"aggs": ("mean", "last", "p95", "rate"), "group_by": ("host",), "step_ns": 120 * 10**9}
    one = run_query(fleet.repo, sel, workers=1, **kw)  # type: ignore[arg-type]
    many = run_query(fleet.repo, sel, workers=32, **kw)  # type: ignore[arg-type]
    assert one.rows == many.rows and len(one.rows) > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"aggs": ("median",)}, "unknown aggregation"),
        ({"aggs": ()}, "at least one"),
        ({"group_by": ("bad/label",)}, "group-by"),
        ({"group_by": ("metric",)}, "output column"),
        ({"step_ns": 0}, "positive"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_query_arguments_raise_validation_error(
    fleet: Fleet, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        run_query(fleet.repo, Selector(metrics=("cpu.util",)), **kwargs)  # type: ignore[arg-type]


def test_a_selection_matching_nothing_is_empty_not_an_error(fleet: Fleet) -> None:
    result = run_query(fleet.repo, Selector(metrics=("no.such.*",)), aggs=("mean",))
    assert result.rows == [] and result.stats.objects == 0
    late = Selector(metrics=("cpu.util",), start_ns=T0 + 10**15)
    assert run_query(fleet.repo, late).rows == []


class _FailingGets(CountingStore):
    """Every ``get`` of one key fails as a backend that gave up retrying would."""

    def __init__(self, inner: ObjectStore, bad_key: str) -> None:
        super().__init__(inner)
        self.bad_key = bad_key

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        if key == self.bad_key:
            raise RetryableBackendError("S3 get failed after 5 attempts: SlowDown", key=key)
        return super().get(key, byte_range=byte_range)


def test_a_query_that_cannot_read_an_object_names_it(fleet: Fleet) -> None:
    sel = Selector(metrics=("gpu.0.power_avg_mw",), hosts=("gpu-node-0003",))
    planned = [
        e.key for hp in plan_query(fleet.repo, sel).hosts for u in hp.units() for e in u.entries
    ]
    bad = planned[len(planned) // 2]
    broken = Repository(_FailingGets(fleet.repo.objects.inner, bad), fleet.repo.config)
    with pytest.raises(QueryIncomplete, match="could not read 1 object") as info:
        run_query(broken, sel, aggs=("mean",))
    assert info.value.keys == (bad,)
    assert bad in str(info.value) and info.value.host == "gpu-node-0003"
    assert isinstance(info.value, BackendError)


def test_a_fleet_wide_selection_lists_once_and_answers_as_per_host_listings() -> None:
    """Selecting every host lists ``marks/deletions/`` and ``index/`` once for the fleet
    (not twice per host); the answer is the one the per-host listings give, across the
    raw and compressed tiers, and matches the input."""
    from snapcloud.backends import MemoryStore
    from snapcloud.retention import Compactor
    from tests.retention.scenario import CONFIG as TIERS
    from tests.retention.scenario import HOUR, write_host
    from tests.retention.scenario import T0 as R0

    memory = MemoryStore()
    written = {h: write_host(memory, h, 16) for h in ("tier-a", "tier-b", "tier-c")}
    Compactor(memory, TIERS).run(R0 + 14 * HOUR)  # groups ending by 8 h: compressed tier
    assert any(k.startswith("compressed/") for k in (i.key for i in memory.list("")))
    counting = CountingStore(memory)
    repo = Repository(counting, TIERS)
    kw: dict[str, Any] = {"aggs": ("count", "sum", "max"), "group_by": ("host",)}
    fleet = run_query(repo, Selector(metrics=("*",)), **kw)
    fleet_lists = counting.counts()["list"]
    counting.reset()
    per_host = run_query(repo, Selector(metrics=("*",), hosts=tuple(written)), **kw)
    assert fleet.rows == per_host.rows and len(fleet.rows) > 0
    assert fleet_lists == 2  # marks/deletions/, index/
    assert counting.counts()["list"] == 2 * len(written) and counting.counts()["list_dirs"] == 1
    for row in fleet.records():
        values = np.concatenate([s.metric(row["metric"]).values for s in written[row["host"]]])
        assert row["count"] == int(np.count_nonzero(~np.isnan(values)))


def test_columnar_and_metric_object_snapshots_aggregate_alike() -> None:
    """The aggregator reads a decoded snapshot's columns; a snapshot of metric objects
    with the same samples gives the same rows, bit for bit."""
    from snapcloud.codec import decode, encode_keyframe
    from snapcloud.query._aggregate import Aggregator
    from snapcloud.query._executor import trim
    from snapcloud.query._planner import HostPlan
    from snapcloud.synth import host_snapshots

    snaps = [decode(encode_keyframe(s)) for s in host_snapshots(2, 3)]
    assert all(s.columns is not None for s in snaps)
    hp = HostPlan(snaps[0].host, {}, {}, (), (), {}, 0)
    wanted = frozenset(n for n in snaps[0].metric_names if n.startswith(("gpu.", "cpu.total")))
    start, end = snaps[0].window_start + 20 * 10**9, snaps[2].window_start + 30 * 10**9
    answers = []
    for columnar in (True, False):
        agg = Aggregator(("mean", "min", "max", "sum", "count", "last", "p90", "rate"), ("gpu",))
        for s in snaps:
            s = s if columnar else s.with_metrics(s.metrics)
            cut = trim(s, wanted, start, end)
            assert (cut.columns is not None) == columnar
            agg.add(hp, cut)
        answers.append(agg.rows())
    assert answers[0] == answers[1] and len(answers[0]) > 10


class _RecordedGets(CountingStore):
    """Remembers the keys it was asked for, in the order the requests were made."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.order: list[str] = []

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        self.order.append(key)  # list.append is atomic under the GIL
        return super().get(key, byte_range=byte_range)


def _small_fleet(hosts: int) -> Any:
    from snapcloud.backends import MemoryStore
    from snapcloud.store import HostStream
    from snapcloud.synth import host_snapshots

    memory = MemoryStore()
    for h in range(hosts):
        snaps = host_snapshots(h, 3)
        stream = HostStream(memory, snaps[0].host, SnapshotConfig())
        for s in snaps:
            stream.append(s)
    return memory


def test_objects_are_read_while_later_hosts_are_still_planned() -> None:
    """Planning streams: the first hosts' objects are read before the last hosts' index
    segments (with one worker the order is fixed: 9 hosts planned ahead, then each
    host's reads go in before the next host's planning). The answer is the one a
    wide pool gives, and every host's reads follow its own segment read."""
    memory = _small_fleet(14)
    recorded = _RecordedGets(memory)
    sel = Selector(metrics=("gpu.*.power_avg_mw", "cpu.util"))
    kw: dict[str, Any] = {"aggs": ("mean", "count", "last"), "group_by": ("host",)}
    one = run_query(Repository(recorded, SnapshotConfig()), sel, workers=1, **kw)
    wide = run_query(Repository(memory, SnapshotConfig()), sel, workers=16, **kw)
    assert one.rows == wide.rows and len(one.rows) == 14 * 2
    order = recorded.order
    segments = [i for i, k in enumerate(order) if k.startswith("index/")]
    data = [i for i, k in enumerate(order) if k.startswith("raw/")]
    assert len(segments) == 14 and len(data) == 14 * 3
    assert data[0] < segments[-1]  # reading began before planning ended
    for host in {k.split("/")[1] for k in order}:
        mine = [i for i, k in enumerate(order) if k.split("/")[1] == host]
        assert order[mine[0]].startswith("index/"), host
    assert one.stats.min_requests == 14 + 14 * 3 and one.stats.hosts == 14
    assert 0 < one.stats.plan_seconds <= one.stats.seconds


def test_a_corrupt_index_segment_of_a_later_host_stops_the_query() -> None:
    """A segment that fails its checksum while earlier hosts are being read raises the
    segment's error; nothing is answered from the hosts before it."""
    from snapcloud.errors import ChecksumMismatch

    memory = _small_fleet(12)
    key = next(i.key for i in memory.list("index/gpu-node-0010/"))
    data = bytearray(memory.get(key).data)
    data[len(data) // 2] ^= 0x01
    memory.put(key, bytes(data))
    sel = Selector(metrics=("cpu.util",))
    for workers in (1, 16):
        with pytest.raises(ChecksumMismatch, match="gpu-node-0010"):
            run_query(Repository(memory, SnapshotConfig()), sel, workers=workers)


@pytest.mark.parametrize(
    ("aggs", "group_by", "step_s", "prefixes"),
    [
        (("mean", "min", "max", "sum", "count", "last", "p90"), ("gpu",), None, ("gpu.", "cpu.")),
        (("mean", "sum", "count", "last", "p50"), ("host",), 7, ("gpu.", "cpu.total")),
        (("sum", "mean", "last"), (), 13, ("cpu.3.util",)),  # one metric: runs end per snapshot
        (("mean", "rate", "increase", "count"), ("host",), 20, ("net.", "gpu.0.")),  # counters
    ],
)
def test_an_hour_folded_at_once_equals_snapshot_by_snapshot(
    aggs: tuple[str, ...], group_by: tuple[str, ...], step_s: int | None, prefixes: tuple[str, ...]
) -> None:
    """``add_many`` (a compressed-tier object's snapshots in one call) leaves the state
    bit for bit as one ``add`` per snapshot does: partial first and last windows, a
    snapshot trimmed to nothing, buckets, pooled GPUs, one-metric runs, counters."""
    from snapcloud.codec import decode, encode_keyframe
    from snapcloud.query._aggregate import Aggregator
    from snapcloud.query._executor import trim
    from snapcloud.query._planner import HostPlan
    from snapcloud.synth import host_snapshots

    snaps = [decode(encode_keyframe(s)) for s in host_snapshots(5, 6)]
    hp = HostPlan(snaps[0].host, {}, {}, (), (), {}, 0)
    wanted = frozenset(n for n in snaps[0].metric_names if n.startswith(prefixes))
    start, end = snaps[0].window_start + 11 * 10**9, snaps[4].window_start + 23 * 10**9
    cut = [trim(s, wanted, start, end) for s in snaps]
    assert cut[-1].sample_count == 0 and all(c.columns is not None for c in cut)
    step = None if step_s is None else step_s * 10**9
    one, many = Aggregator(aggs, group_by, step), Aggregator(aggs, group_by, step)
    taken = [one.add(hp, c) for c in cut]
    assert many.add_many(hp, cut) == sum(taken) > 0
    assert many.rows() == one.rows() and len(one.rows()) > 0
    assert many.samples == one.samples
