"""Range hints: the compactor names each sealed raw group's time range in a key, queries of
other times skip that group's index segment, and a hint is trusted only while its
segment is the version it was written for (docs/architecture.md, D18)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcloud.backends import CountingStore, MemoryStore, ObjectStore
from snapcloud.index import (
    IndexSegment,
    parse_range_hint,
    range_hint_key,
    segment_key,
    segment_prefix,
)
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig, SnapshotQuery
from snapcloud.query import Selector, run_query
from snapcloud.retention import Compactor
from snapcloud.store import HostStream, Repository, verify_stream
from tests.retention.scenario import CONFIG, HOUR, NS, T0, write_host

#: groups of 4 one-hour windows that stay raw for a year: only hints change anything
RAW = SnapshotConfig(
    keyframe_interval=4,
    raw_max_age_ns=365 * 24 * HOUR,
    compressed_max_age_ns=365 * 24 * HOUR,
    archive_max_age_ns=365 * 24 * HOUR,
)


def _hints(objects: ObjectStore, host: str) -> dict[int, tuple[int, int, str]]:
    prefix = segment_prefix(host)
    out = {}
    for info in objects.list(prefix):
        hint = parse_range_hint(info.key[len(prefix) :])
        if hint is not None:
            out[hint.base] = (hint.start_ns, hint.end_ns, hint.etag)
    return out


def _segment_gets(objects: MemoryStore, run: object) -> int:
    """Index segment reads (raw and tier) made by ``run()``."""
    seen: list[str] = []
    inner = objects
    original = inner.get

    def get(key: str, **kw: object) -> object:
        if key.startswith("index/"):
            seen.append(key)
        return original(key, **kw)  # type: ignore[arg-type]

    inner.get = get  # type: ignore[method-assign]
    try:
        run()  # type: ignore[operator]
    finally:
        del inner.get
    return len(seen)


def test_hint_keys_round_trip_and_odd_etags_get_none() -> None:
    key = range_hint_key("gpu-1", 8, -5, 10**19, '"0123abcdef-2"')
    assert key == f"index/gpu-1/raw/{8:012d}_-5_{10**19}_0123abcdef-2.range"
    hint = parse_range_hint(key.rsplit("/", 1)[1])
    assert hint is not None
    assert (hint.base, hint.start_ns, hint.end_ns, hint.etag) == (8, -5, 10**19, "0123abcdef-2")
    assert range_hint_key("gpu-1", 8, 0, 1, "a/b") is None  # a key cannot carry it
    assert range_hint_key("gpu-1", 8, 0, 1, "x" * 65) is None
    for name in (f"{8:012d}.json", f"{8:012d}_0_1_.range", "8_0_1_ab.range", f"{8:012d}_0_1_ab"):
        assert parse_range_hint(name) is None


def test_the_compactor_hints_sealed_raw_groups_only_once() -> None:
    """3 groups: the oldest is compressed (no hint), the middle one stays raw and sealed
    (a hint with its range and segment ETag), the open one gets none; a second run
    writes nothing."""
    objects = MemoryStore()
    write_host(objects, "gpu-1", 12)
    now = T0 + 12 * HOUR
    first = Compactor(objects, CONFIG).run(now)
    hints = _hints(objects, "gpu-1")
    seg = objects.get(segment_key("gpu-1", 4))
    assert hints == {4: (T0 + 4 * HOUR, T0 + 8 * HOUR, seg.etag)}
    assert [h.range_hints_written for h in first.hosts] == [1]
    before = {i.key: i.etag for i in objects.list("index/")}
    again = Compactor(objects, CONFIG).run(now)
    assert [(h.range_hints_written, h.range_hints_deleted) for h in again.hosts] == [(0, 0)]
    assert {i.key: i.etag for i in objects.list("index/")} == before
    assert verify_stream(HostStream(objects, "gpu-1", CONFIG)).ok


def test_a_compacted_group_loses_its_hint() -> None:
    objects = MemoryStore()
    write_host(objects, "gpu-1", 12)
    Compactor(objects, CONFIG).run(T0 + 12 * HOUR)
    assert set(_hints(objects, "gpu-1")) == {4}
    Compactor(objects, CONFIG).run(T0 + 15 * HOUR)  # group 4 now compressed: marked
    assert _hints(objects, "gpu-1") == {}


def _fleet(objects: ObjectStore, hosts: int, windows: int) -> list[list[ProfileSnapshot]]:
    return [write_host(objects, f"gpu-{h}", windows, RAW, seed=h) for h in range(hosts)]


def test_a_query_reads_only_the_segments_of_groups_in_its_range() -> None:
    """4 hosts x 3 groups: the last hour reads the open group's segment alone, an hour
    of the middle group reads that and the open one; answers equal those without hints."""
    plain, hinted = MemoryStore(), MemoryStore()
    _fleet(plain, 4, 12)
    _fleet(hinted, 4, 12)
    Compactor(hinted, RAW).run(T0 + 12 * HOUR)
    assert all(set(_hints(hinted, f"gpu-{h}")) == {0, 4} for h in range(4))
    cases = {
        (T0 + 11 * HOUR, T0 + 12 * HOUR): 1,
        (T0 + 5 * HOUR, T0 + 6 * HOUR): 2,
        (T0 + 3 * HOUR + 1, T0 + 4 * HOUR + 1): 3,  # the edge of groups 0 and 4
        (None, None): 3,
    }
    for (start, end), per_host in cases.items():
        sel = Selector(metrics=("util", "b*"), start_ns=start, end_ns=end)
        results = {}
        for name, objects in (("plain", plain), ("hinted", hinted)):
            counted = CountingStore(objects)
            result = run_query(Repository(counted, RAW), sel, aggs=("mean", "count", "increase"))
            results[name] = result
        assert results["hinted"].records() == results["plain"].records(), (start, end)
        assert (
            results["hinted"].stats.min_requests
            == results["plain"].stats.min_requests - (3 - per_host) * 4
        )
        # the figures count what was read: segments plus objects
        assert results["hinted"].stats.total_requests == results["hinted"].stats.min_requests + 2


def test_a_hint_is_ignored_once_its_segment_changes() -> None:
    """A segment rewritten after its hint (here: its last entry dropped) is read again,
    whatever the hint says; the compactor then replaces the stale hint."""
    objects = MemoryStore()
    write_host(objects, "gpu-1", 12, RAW)
    Compactor(objects, RAW).run(T0 + 12 * HOUR)
    key = segment_key("gpu-1", 4)
    seg = IndexSegment.from_bytes(objects.get(key).data, key=key)
    seg.entries = seg.entries[:-1]
    objects.put(key, seg.to_bytes())
    late = SnapshotQuery(start_ns=T0 + 11 * HOUR)  # outside both hints
    stream = HostStream(objects, "gpu-1", RAW)
    assert stream.range_hint(0) is not None and stream.range_hint(4) is None
    # group 4 (its hint no longer vouched for) and the open group 8; not group 0
    assert _segment_gets(objects, lambda: stream.plan(late)) == 2
    report = Compactor(objects, RAW).run(T0 + 12 * HOUR)
    assert [(h.range_hints_written, h.range_hints_deleted) for h in report.hosts] == [(1, 1)]
    assert _hints(objects, "gpu-1")[4] == (T0 + 4 * HOUR, T0 + 7 * HOUR, objects.get(key).etag)
    fresh = HostStream(objects, "gpu-1", RAW)
    assert _segment_gets(objects, lambda: fresh.plan(late)) == 1


def test_verify_reports_a_hint_that_leaves_out_a_window() -> None:
    objects = MemoryStore()
    write_host(objects, "gpu-1", 12, RAW)
    etag = objects.get(segment_key("gpu-1", 0)).etag
    wrong = range_hint_key("gpu-1", 0, T0, T0 + 2 * HOUR, etag)
    assert wrong is not None
    objects.put(wrong, b"")
    report = verify_stream(HostStream(objects, "gpu-1", RAW))
    assert [p.key for p in report.problems] == [segment_key("gpu-1", 0)]
    assert "range hint" in report.problems[0].what
    repaired = verify_stream(HostStream(objects, "gpu-1", RAW), repair=True)
    assert repaired.repaired_segments == 3
    assert _hints(objects, "gpu-1") == {}
    assert verify_stream(HostStream(objects, "gpu-1", RAW)).ok


def _shuffled_stream(objects: ObjectStore, order: list[int]) -> None:
    """One host whose windows are appended out of time order (allowed: windows need
    not grow with seq), 3 samples each, groups of 4."""
    stream = HostStream(objects, "gpu-1", RAW)
    for w in order:
        ts = T0 + w * 60 * NS + np.arange(3, dtype=np.int64) * 20 * NS
        stream.append(
            ProfileSnapshot(
                "gpu-1",
                [MetricSeries("util", ts, np.array([w, w + 0.5, w + 0.25]))],
                window_start=int(ts[0]),
                window_end=int(ts[0]) + 60 * NS,
            )
        )


@settings(max_examples=25, deadline=None)
@given(
    order=st.permutations(list(range(14))),
    start=st.integers(-2, 15),
    length=st.integers(1, 17),
)
def test_hints_never_change_what_a_range_selects(order: list[int], start: int, length: int) -> None:
    """Windows in any order, any range: the entries planned with hints are exactly those
    planned without them."""
    plain, hinted = MemoryStore(), MemoryStore()
    _shuffled_stream(plain, order)
    _shuffled_stream(hinted, order)
    Compactor(hinted, RAW).run(T0 + 30 * 60 * NS)
    assert len(_hints(hinted, "gpu-1")) == 3  # groups 0, 4 and 8; 12 is open
    query = SnapshotQuery(start_ns=T0 + start * 60 * NS, end_ns=T0 + (start + length) * 60 * NS)
    want = HostStream(plain, "gpu-1", RAW).plan(query)
    got = HostStream(hinted, "gpu-1", RAW).plan(query)
    assert got == want


@pytest.mark.parametrize("etag", ["abc", "0" * 32])
def test_a_hint_for_another_version_is_not_trusted(etag: str) -> None:
    """A hint whose ETag is not the listed segment's (left by an older version) skips
    nothing, even when its range would."""
    objects = MemoryStore()
    write_host(objects, "gpu-1", 12, RAW)
    stale = range_hint_key("gpu-1", 0, 0, 1, etag)
    assert stale is not None
    objects.put(stale, b"")
    stream = HostStream(objects, "gpu-1", RAW)
    assert stream.range_hint(0) is None
    assert len(stream.plan(SnapshotQuery(start_ns=T0, end_ns=T0 + HOUR))) == 1


def test_hints_work_over_s3_where_listings_and_reads_quote_etags(
    s3_bucket: tuple[str, str],
) -> None:
    """On the moto server: the ETag a hint carries (from a GET) matches the listing's."""
    from snapcloud.backends import S3Store

    endpoint, bucket = s3_bucket
    objects = S3Store(bucket, "hints", endpoint_url=endpoint)
    write_host(objects, "gpu-1", 12, RAW)
    Compactor(objects, RAW).run(T0 + 12 * HOUR)
    assert set(_hints(objects, "gpu-1")) == {0, 4}
    counted = CountingStore(objects)
    result = run_query(
        Repository(counted, RAW), Selector(metrics=("util",), start_ns=T0 + 11 * HOUR)
    )
    # the open group's segment, the last window and its keyframe; not groups 0 and 4
    assert result.stats.min_requests == 1 + 2 == counted.counts()["get"]
