"""Keyframes and deltas round-trip bit for bit, whatever the values and timestamps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcloud.codec import decode, encode_delta, encode_keyframe, read_header
from snapcloud.errors import ValidationError
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.synth import host_snapshots
from tests.strategies import SPECIAL_BITS, snapshots


def _assert_bit_exact(a: ProfileSnapshot, b: ProfileSnapshot) -> None:
    assert a.header_dict() == b.header_dict()
    for x, y in zip(a.metrics, b.metrics, strict=True):
        assert x.timestamps.tobytes() == y.timestamps.tobytes(), x.name
        assert x.values.tobytes() == y.values.tobytes(), x.name
    assert a.checksum == b.checksum


@settings(max_examples=150, deadline=None)
@given(snapshots(), st.integers(0, 10**6))
def test_keyframe_round_trip(snap: ProfileSnapshot, seq: int) -> None:
    snap = snap.with_seq(seq)
    data = encode_keyframe(snap)
    _assert_bit_exact(decode(data), snap)
    assert read_header(data).seq == seq


@settings(max_examples=150, deadline=None)
@given(snapshots(), snapshots())
def test_delta_round_trip_against_any_base(base: ProfileSnapshot, snap: ProfileSnapshot) -> None:
    snap = snap.with_seq(base.seq + 1)
    data = encode_delta(snap, base)
    _assert_bit_exact(decode(data, base=base), snap)


@settings(max_examples=60, deadline=None)
@given(snapshots(), st.integers(-(10**15), 10**15), st.data())
def test_delta_with_shifted_timestamps_and_changed_values(
    base: ProfileSnapshot, shift: int, data: st.DataObject
) -> None:
    """The seed lost timestamp changes and compared values with a tolerance: we must not."""
    changed = []
    for m in base.metrics:
        values = m.values.copy()
        if len(m) and data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(m) - 1))
            values[i] = np.nextafter(values[i], np.inf) if np.isfinite(values[i]) else 0.0
        changed.append(MetricSeries(m.name, m.timestamps + shift, values, kind=m.kind, unit=m.unit))
    snap = ProfileSnapshot(
        base.host, changed, seq=base.seq + 1, window_start=0, window_end=1, labels={"new": "x"}
    )
    _assert_bit_exact(decode(encode_delta(snap, base), base=base), snap)


def test_special_floats_survive_every_path() -> None:
    specials = np.array(SPECIAL_BITS, dtype=np.uint64).view(np.float64)
    ts = np.arange(specials.size, dtype=np.int64)
    noisy = np.array([51.846000000000004, 0.1, 0.30000000000000004, 1e-320, -0.0] * 2)
    snap = ProfileSnapshot(
        "h",
        [
            MetricSeries("special", ts, specials),
            MetricSeries("noisy", np.arange(10, dtype=np.int64), noisy),
        ],
    )
    _assert_bit_exact(decode(encode_keyframe(snap)), snap)
    nxt = snap.with_seq(1)
    _assert_bit_exact(decode(encode_delta(nxt, snap), base=snap), nxt)


def test_delta_of_unchanged_values_is_tiny() -> None:
    """The seed's case: 10 metrics x 100 identical values; only the timestamps move."""
    rng = np.random.default_rng(3)
    values = [rng.normal(size=100) for _ in range(10)]

    def snap(i: int) -> ProfileSnapshot:
        ts = np.arange(100, dtype=np.int64) * 10**9 + i * 100 * 10**9
        return ProfileSnapshot(
            "h", [MetricSeries(f"m{j}", ts, values[j]) for j in range(10)], seq=i
        )

    base = snap(0)
    delta = encode_delta(snap(1), base)
    assert len(delta) < 0.01 * snap(1).raw_bytes
    _assert_bit_exact(decode(delta, base=base), snap(1))


def test_fleet_like_stream_round_trips_and_compresses() -> None:
    snaps = [s.with_seq(i) for i, s in enumerate(host_snapshots(0, 6))]
    base = snaps[0]
    total = len(encode_keyframe(base))
    for s in snaps[1:]:
        data = encode_delta(s, base)
        total += len(data)
        _assert_bit_exact(decode(data, base=base), s)
    samples = sum(s.sample_count for s in snaps)
    assert total / samples < 2.0  # bytes per sample; raw is 16


def _only(snap: ProfileSnapshot, names: set[str]) -> list[MetricSeries]:
    return [m for m in snap.metrics if m.name in names]


@settings(max_examples=120, deadline=None)
@given(snapshots(), snapshots(), st.data())
def test_partial_decode_gives_exactly_the_chosen_metrics(
    base: ProfileSnapshot, snap: ProfileSnapshot, data: st.DataObject
) -> None:
    """Decoding some metrics of a keyframe and of a delta against that partial keyframe
    gives the same series, bit for bit, as a full decode filtered afterwards."""
    snap = snap.with_seq(base.seq + 1)
    pool = sorted({m.name for m in base.metrics} | {m.name for m in snap.metrics})
    names = set(data.draw(st.lists(st.sampled_from(pool), unique=True))) if pool else set()
    names.add("no-such-metric")
    kf, delta = encode_keyframe(base), encode_delta(snap, base)
    part_base = decode(kf, metrics=names)
    part = decode(delta, base=part_base, metrics=names)
    for got, want in ((part_base, base), (part, snap)):
        assert got.header_dict() == want.with_metrics(_only(want, names)).header_dict()
        expected = _only(want, names)
        assert [m.name for m in got.metrics] == [m.name for m in expected]
        for x, y in zip(got.metrics, expected, strict=True):
            assert (x.kind, x.unit) == (y.kind, y.unit)
            assert x.timestamps.tobytes() == y.timestamps.tobytes(), x.name
            assert x.values.tobytes() == y.values.tobytes(), x.name
    # a delta decoded in full against a full base agrees; against the partial base it
    # can only be decoded for metrics that base holds
    assert decode(delta, base=decode(kf)) == snap


def test_partial_decode_of_a_fleet_stream() -> None:
    snaps = host_snapshots(0, 6)
    kf = encode_keyframe(snaps[0])
    blobs = [encode_delta(s.with_seq(i), snaps[0]) for i, s in enumerate(snaps[1:], 1)]
    names = {"gpu.3.power_avg_mw", "cpu.7.util", "disk.read_bytes"}
    base = decode(kf, metrics=names)
    assert {m.name for m in base.metrics} == names
    for i, blob in enumerate(blobs, 1):
        got = decode(blob, base=base, metrics=names)
        want = snaps[i].with_seq(i)
        assert [m.name for m in got.metrics] == [m.name for m in _only(want, names)]
        assert all(
            x.values.tobytes() == y.values.tobytes()
            for x, y in zip(got.metrics, _only(want, names), strict=True)
        )
    with pytest.raises(ValidationError, match="cannot encode against a partially decoded"):
        encode_delta(snaps[1].with_seq(1), base)


def test_wide_snapshot_round_trips_in_every_path() -> None:
    """Thousands of metrics of every byte width: width classes too large for the cached
    block layout are coded a class at a time, in full, in deltas and in partial decodes."""
    rng = np.random.default_rng(3)
    ts = np.arange(50, dtype=np.int64) * 10**9
    values = [np.round(rng.normal(0, 10.0 ** (i % 15), 50), i % 4) for i in range(2500)]
    values[7][3] = -0.0  # a correction
    values[8][5] = np.nan  # an exception

    def snap(seq: int, vs: list[np.ndarray]) -> ProfileSnapshot:
        ms = [MetricSeries(f"m{i}", ts + seq * 50 * 10**9, v) for i, v in enumerate(vs)]
        return ProfileSnapshot("wide", ms, seq=seq)

    base = snap(0, values)
    changed = snap(1, [v if i % 3 else v * 2 for i, v in enumerate(values)])
    kf, delta = encode_keyframe(base), encode_delta(changed, base)
    _assert_bit_exact(decode(kf), base)
    _assert_bit_exact(decode(delta, base=decode(kf)), changed)
    names = {f"m{i}" for i in range(0, 2500, 7)}
    part = decode(delta, base=decode(kf, metrics=names), metrics=names)
    for x, y in zip(part.metrics, _only(changed, names), strict=True):
        assert x.values.tobytes() == y.values.tobytes(), x.name


def test_decoded_snapshot_holds_columns_and_builds_metrics_when_asked() -> None:
    """A full decode keeps its metrics as columns (architecture D16); what it answers,
    checksum included, is what the encoded snapshot holds, before and after the
    metric objects exist."""
    snaps = [s.with_seq(i) for i, s in enumerate(host_snapshots(3, 3))]
    key = decode(encode_keyframe(snaps[0]))
    delta = decode(encode_delta(snaps[1], key), base=key)
    for got, want in ((key, snaps[0]), (delta, snaps[1])):
        cols = got.columns
        assert cols is not None and got._metrics is None  # nothing built yet
        assert cols.names == [m.name for m in want.metrics]
        assert cols.values.shape == (len(want.metrics), len(want.metrics[0]))
        assert not cols.values.flags.writeable and not cols.timestamps.flags.writeable
        assert got.sample_count == want.sample_count and got.metric_names == cols.names
        assert got.header_dict() == want.header_dict()
        # The checksum recomputed from the columns alone is the stored one.
        assert got.with_columns(cols).checksum == want.checksum
        _assert_bit_exact(got, want)  # builds the metric objects
        assert got.metrics[0].values.base is not None  # rows of the matrix, not copies
    # A delta decoded against a base whose metric objects were never built.
    fresh = decode(encode_keyframe(snaps[0]))
    _assert_bit_exact(decode(encode_delta(snaps[2], fresh), base=fresh), snaps[2])
    assert fresh._metrics is None
    # Encoding against a decoded (columnar) base gives the bytes a built base gives.
    assert encode_delta(snaps[2], fresh) == encode_delta(snaps[2], snaps[0])


def test_columns_take_and_slice_time_match_the_metric_objects() -> None:
    snap = decode(encode_keyframe(host_snapshots(1, 1)[0]))
    cols = snap.columns
    assert cols is not None
    ts = cols.timestamps
    rows = [5, 0, 17]
    picked = cols.take(rows).slice_time(int(ts[10]), int(ts[40]))
    for i, name, t, v in zip(
        rows, picked.names, [picked.timestamps] * 3, picked.values, strict=True
    ):
        want = snap.metrics[i].slice_time(int(ts[10]), int(ts[40]))
        assert name == want.name
        assert t.tobytes() == want.timestamps.tobytes()
        assert v.tobytes() == want.values.tobytes()
    assert cols.slice_time(None, None) is cols
