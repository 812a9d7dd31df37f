"""Tier objects, tier segments, keys and the supersession rule (store/_tiers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcloud.codec import decode_archive, decode_compressed, encode_archive, encode_compressed
from snapcloud.errors import ChecksumMismatch, CorruptError, TruncatedObject, UnknownFormat
from snapcloud.index import TierSegment
from snapcloud.layout import (
    TierItem,
    mark_key,
    parse_mark_key,
    parse_tier_data_key,
    parse_tier_index_key,
    tier_data_key,
    tier_index_key,
)
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.store import TierView
from snapcloud.synth import host_snapshots
from tests.retention.scenario import T0
from tests.strategies import SPECIAL_BITS, snapshots

NS = 10**9


def _awkward_group() -> list[ProfileSnapshot]:
    """Snapshots whose merge is not trivial: metric sets, units and timestamps that change."""
    special = np.array(SPECIAL_BITS, dtype=np.uint64).view(np.float64)
    out = []
    for i in range(5):
        ts = T0 + i * 60 * NS + np.arange(9, dtype=np.int64) * NS
        metrics = [MetricSeries("a", ts, special, unit="W" if i < 3 else "mW")]
        if i % 2 == 0:  # present in some windows only, irregular and repeated times
            irregular = np.array([0, 0, 5, 7, 7, 7, 30], dtype=np.int64) * NS + ts[0]
            metrics.append(MetricSeries("b", irregular, np.arange(7) * 0.1, kind="counter"))
        if i == 4:  # a later window with earlier timestamps than the one before
            metrics.append(MetricSeries("c", ts - 3600 * NS, -np.zeros(9)))
        metrics.append(MetricSeries("empty", np.zeros(0, np.int64), np.zeros(0)))
        out.append(
            ProfileSnapshot(
                "h",
                metrics,
                seq=10 + i,
                window_start=int(ts[0]) - i,
                window_end=int(ts[-1]) + 1,
                fingerprint=f"f{i % 2}",
                labels={"i": str(i)},
                metadata={"x": i * 0.5, "n": None, "ok": True},
            )
        )
    return out


@pytest.mark.parametrize("max_frame", [1, 10**9])
def test_compressed_object_round_trips_bit_exact(max_frame: int) -> None:
    group = _awkward_group()
    data = encode_compressed("h", group, level=19, max_frame_bytes=max_frame)
    back = decode_compressed(data, key="k")
    assert sorted(back) == [s.seq for s in group]
    for s in group:
        assert back[s.seq] == s
        assert back[s.seq].checksum == s.checksum
        for m, n in zip(back[s.seq].metrics, s.metrics, strict=True):
            assert m.values.tobytes() == n.values.tobytes()
    only = decode_compressed(data, seqs=[12])
    assert only[12] == group[2]
    if max_frame == 1:
        assert set(only) == {12}  # one frame per snapshot: only that frame decoded


@settings(max_examples=40, deadline=None)
@given(st.lists(snapshots("h"), min_size=1, max_size=5))
def test_compressed_object_round_trips_any_group(group: list[ProfileSnapshot]) -> None:
    group = [s.with_seq(100 + i) for i, s in enumerate(group)]
    back = decode_compressed(encode_compressed("h", group, level=3, max_frame_bytes=2**20))
    for s in group:
        assert back[s.seq] == s
        assert back[s.seq].checksum == s.checksum


def test_merging_compresses_better_than_the_raw_objects() -> None:
    from snapcloud import codec

    group = [s.with_seq(i) for i, s in enumerate(host_snapshots(0, 20))]
    raw = len(codec.encode_keyframe(group[0])) + sum(
        len(codec.encode_delta(s, group[0])) for s in group[1:]
    )
    merged = len(encode_compressed(group[0].host, group, level=19, max_frame_bytes=2**30))
    assert merged < 0.85 * raw


def test_corrupt_tier_objects_are_refused() -> None:
    group = _awkward_group()
    data = encode_compressed("h", group, level=3, max_frame_bytes=2**20)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    with pytest.raises(ChecksumMismatch):
        decode_compressed(bytes(flipped))
    with pytest.raises(TruncatedObject):
        decode_compressed(data[:-10])
    with pytest.raises(UnknownFormat):
        decode_compressed(b"XXXX" + data[4:])
    with pytest.raises(UnknownFormat):  # a compressed object is not an archive
        decode_archive(data)
    with pytest.raises(CorruptError):
        decode_compressed(data, max_decoded=10)


def test_archive_object_round_trips() -> None:
    a, b = _awkward_group()[:2]
    data = encode_archive("h", [(60 * NS, a), (3600 * NS, b)], [(10, 11)], level=3)
    back = decode_archive(data)
    assert [(r, s) for r, s in back] == [(60 * NS, a), (3600 * NS, b)]
    assert decode_archive(data, only=[1]) == [(3600 * NS, b)]


def test_tier_segment_round_trip_and_checksum() -> None:
    group = _awkward_group()
    seg = TierSegment.build(
        host="h",
        tier="compressed",
        key="compressed/h/2026/01/01/000000000010-000000000014.snapt",
        object_bytes=1000,
        groups=[(10, 14)],
        source_snapshots=5,
        source_samples=sum(s.sample_count for s in group),
        created_ns=5,
        rows=[(s, 200, 0) for s in group],
        window=(min(s.window_start for s in group), max(s.window_end for s in group)),
    )
    back = TierSegment.from_bytes(seg.to_bytes(), key="x")
    assert back == seg
    assert [e.seq for e in back.entries] == [10, 11, 12, 13, 14]
    assert back.metric_names(back.entries[1]) == ["a", "empty"]
    assert back.entries[2].checksum == group[2].checksum
    assert all(e.kind == "k" and e.base == e.seq for e in back.entries)
    assert back.finest() == back.entries
    data = bytearray(seg.to_bytes())
    data[data.index(b'"host":"h"') + 8] = ord("x")
    with pytest.raises(ChecksumMismatch):
        TierSegment.from_bytes(bytes(data))


def test_keys_parse_back() -> None:
    key = tier_data_key("archive", "gpu-1", 4, 99, T0)
    assert key == "archive/gpu-1/2026/01/01/000000000004-000000000099.snapt"
    assert parse_tier_data_key(key) == ("archive", "gpu-1", 4, 99)
    assert parse_tier_data_key("raw/gpu-1/2026/01/01/000000000004.k.snap") is None
    ikey = tier_index_key("compressed", "gpu-1", 4, 7, -5, 10)
    item = parse_tier_index_key(ikey, "gpu-1", "compressed")
    assert item == TierItem("compressed", 4, 7, -5, 10, ikey)
    assert parse_tier_index_key(ikey, "gpu-2", "compressed") is None
    assert parse_mark_key(mark_key("gpu-1", "raw", 4, 7), "gpu-1") == ("raw", 4, 7)
    assert (
        parse_mark_key("marks/deletions/gpu-1/orphans-00000000000000000001.json", "gpu-1") is None
    )


def _item(tier: str, first: int, last: int) -> TierItem:
    return TierItem(tier, first, last, 0, 1, f"index/h/{tier}/{first}")  # type: ignore[arg-type]


def test_supersession_rule() -> None:
    view = TierView(
        marked=frozenset({("compressed", 8), ("raw", 12)}),
        compressed=(
            _item("compressed", 0, 3),
            _item("compressed", 4, 7),
            _item("compressed", 8, 11),
        ),
        archive=(_item("archive", 4, 11),),
    )
    served = [(s.tier, s.first) for s in view.serving([0, 4, 8, 12, 16])]
    # archive beats compressed beats raw; a marked item is invisible.
    assert served == [("compressed", 0), ("archive", 4), ("raw", 16)]
    unmarked_archive = TierView(frozenset({("archive", 4)}), view.compressed, view.archive)
    served = [(s.tier, s.first) for s in unmarked_archive.serving([0, 4, 8, 12])]
    assert served == [("compressed", 0), ("compressed", 4), ("compressed", 8), ("raw", 12)]


def test_compressed_object_cuts_columns_then_metric_by_metric() -> None:
    """Members that hold every merged series over one span come back as column slices;
    from the first member that does not (here: two metrics of different lengths whose
    concatenations still line up), members are cut metric by metric, and every
    snapshot is still bit-exact."""
    t = T0 + np.arange(40, dtype=np.int64) * NS
    spans = [((0, 10), (0, 10)), ((10, 15), (10, 15)), ((15, 18), (15, 22)), ((18, 25), (22, 25))]
    spans.append(((25, 40), (25, 40)))
    group = []
    for i, (a, b) in enumerate(spans):
        metrics = [
            MetricSeries("a", t[a[0] : a[1]], np.arange(a[0], a[1]) * 0.5),
            MetricSeries("b", t[b[0] : b[1]], -np.arange(b[0], b[1]) * 1.25, kind="counter"),
        ]
        group.append(ProfileSnapshot("h", metrics, seq=i, window_start=int(t[0]) + i))
    back = decode_compressed(encode_compressed("h", group, level=3, max_frame_bytes=2**30))
    assert [back[i].columns is not None for i in range(5)] == [True, True, False, False, False]
    for s in group:
        assert back[s.seq] == s
        assert back[s.seq].checksum == s.checksum
        assert back[s.seq].with_metrics(back[s.seq].metrics).checksum == s.checksum
