"""Tier objects: the compressed and archive containers (codec/_compressed.py,
codec/_archive.py). Tier segments, keys and the supersession rule:
tests/index/test_tier_segments.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcloud.codec import decode_archive, decode_compressed, encode_archive, encode_compressed
from snapcloud.errors import ChecksumMismatch, CorruptError, TruncatedObject, UnknownFormat
from snapcloud.models import MetricSeries, ProfileSnapshot
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
