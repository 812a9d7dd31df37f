"""The object frame: version 2 fields, version 1 objects still read, the zstd dictionary."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import crc32c
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapcloud.codec import _format, _zstd, decode, encode_delta, encode_keyframe, read_header
from snapcloud.errors import CorruptError, TruncatedObject, UnknownFormat
from snapcloud.models import MetricSeries, ProfileSnapshot

DATA = Path(__file__).parent / "data"


def v1_snapshots() -> tuple[ProfileSnapshot, ProfileSnapshot]:
    """The keyframe and delta stored in tests/codec/data by the format-1 encoder (211a353)."""
    t0 = 1_767_225_600 * 10**9
    ts = t0 + np.arange(60, dtype=np.int64) * 10**9
    odd = t0 + np.array([0, 3, 4, 9, 30, 31], dtype=np.int64) * 10**8
    util = np.round(np.linspace(0, 100, 60), 1)
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 1e-300, 51.846000000000004])
    shift = 60 * 10**9
    common = {"fingerprint": "llm-train", "labels": {"cluster": "a"}}
    common["metadata"] = {"driver": "550.54.15"}  # type: ignore[assignment]
    base = ProfileSnapshot(
        "gpu-node-0001",
        [
            MetricSeries("cpu.util", ts, util, unit="%"),
            MetricSeries("gpu.0.power_mw", ts, np.full(60, 351_000.0), unit="mW"),
            MetricSeries("odd", odd, special, kind="counter"),
        ],
        seq=120,
        window_start=t0,
        window_end=t0 + shift,
        **common,  # type: ignore[arg-type]
    )
    delta = ProfileSnapshot(
        "gpu-node-0001",
        [
            MetricSeries("cpu.util", ts + shift, util[::-1].copy(), unit="%"),
            MetricSeries("gpu.0.power_mw", ts + shift, np.full(60, 351_000.0), unit="mW"),
            MetricSeries("odd", odd + shift, special[::-1].copy(), kind="counter"),
        ],
        seq=121,
        window_start=t0 + shift,
        window_end=t0 + 2 * shift,
        **common,  # type: ignore[arg-type]
    )
    return base, delta


def test_version_1_objects_still_decode_bit_exact() -> None:
    base, delta = v1_snapshots()
    kb = (DATA / "v1_keyframe.snap").read_bytes()
    db = (DATA / "v1_delta.snap").read_bytes()
    assert read_header(kb).version == 1 and read_header(db).version == 1
    assert read_header(db).base_seq == 120
    got_base = decode(kb)
    got_delta = decode(db, base=got_base)
    assert got_base == base and got_delta == delta
    assert got_base.checksum == base.checksum and got_delta.checksum == delta.checksum
    # A group begun under format 1 takes format-2 deltas: the base is named by content.
    v2 = encode_delta(delta, got_base)
    assert read_header(v2).version == 2
    assert decode(v2, base=got_base) == delta
    assert decode(db, base=got_base, metrics=["odd"]).metrics[0] == delta.metrics[2]


def test_version_1_frame_damage_is_still_detected() -> None:
    kb = (DATA / "v1_keyframe.snap").read_bytes()
    for i in range(0, len(kb), 7):
        bad = bytearray(kb)
        bad[i] ^= 0x10
        with pytest.raises(CorruptError):
            decode(bytes(bad))
    with pytest.raises(TruncatedObject):
        decode(kb[:-1])


def test_version_2_is_written_and_small() -> None:
    base, delta = v1_snapshots()
    kb, db = encode_keyframe(base), encode_delta(delta, base)
    hk, hd = read_header(kb), read_header(db)
    assert (hk.version, hk.dictionary, hk.kind, hk.seq) == (2, 1, 0, 120)
    assert (hd.kind, hd.seq, hd.base_seq, hd.base_checksum) == (1, 121, 120, base.checksum)
    assert hd.content_checksum == delta.checksum

    # magic, version, kind, dictionary, seq, delta seq, base crc, crc, 2 sizes, trailer
    def size(v: int) -> int:
        return len(_format._varint(v))

    sizes = size(hd.decoded_size) + size(hd.payload_size)
    assert len(db) - hd.payload_size == 4 + 3 + 1 + 1 + 4 + 4 + sizes + 4 <= 24
    sizes = size(hk.decoded_size) + size(hk.payload_size)
    assert len(kb) - hk.payload_size == 4 + 3 + 1 + 4 + sizes + 4 <= 20
    assert decode(db, base=decode(kb)) == delta


@given(
    seq=st.integers(0, 2**64 - 1),
    back=st.integers(-(2**20), 2**20),
    sizes=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 3)),
    crcs=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    kind=st.sampled_from([0, 1]),
)
def test_header_fields_round_trip(
    seq: int, back: int, sizes: tuple[int, int], crcs: tuple[int, int], kind: int
) -> None:
    base_seq = min(max(seq - back, 0), 2**64 - 1) if kind else seq
    header = _format.FrameHeader(kind, seq, base_seq, crcs[0] if kind else 0, crcs[1], sizes[0], 0)
    payload = bytes(range(sizes[1]))
    got, view = _format.unpack_frame(_format.pack_frame(header, payload))
    assert bytes(view) == payload
    assert got == dataclasses.replace(header, payload_size=len(payload), version=2)


def _reframe(body: bytes) -> bytes:
    return body + struct.pack("<I", crc32c.crc32c(body))


def test_malformed_header_fields_are_typed_errors() -> None:
    base, _ = v1_snapshots()
    data = encode_keyframe(base)
    # An over-long varint for seq (a valid frame checksum around it).
    overlong = data[:7] + b"\xf8\x80\x00" + data[8:-4]
    with pytest.raises(CorruptError, match="varint"):
        decode(_reframe(overlong))
    endless = data[:7] + b"\xff" * 11 + data[8:-4]
    with pytest.raises(CorruptError, match="varint"):
        decode(_reframe(endless))
    with pytest.raises(UnknownFormat, match="dictionary 9"):
        decode(_reframe(data[:6] + b"\x09" + data[7:-4]))
    with pytest.raises(UnknownFormat, match="kind 7"):
        decode(_reframe(data[:5] + b"\x07" + data[6:-4]))
    with pytest.raises(TruncatedObject):
        decode(data[:9])


def test_every_byte_of_a_delta_is_covered() -> None:
    base, delta = v1_snapshots()
    data = encode_delta(delta, base)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x04
        with pytest.raises(CorruptError):
            decode(bytes(bad), base=base)


def test_dictionary_is_pinned_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _zstd.dictionary(1) is not None and _zstd.dictionary(0) is None
    monkeypatch.setattr(_zstd, "_verified", {})
    monkeypatch.setitem(_zstd._DICT_SHA256, 1, "0" * 64)
    with pytest.raises(CorruptError, match="dictionary 1 of this installation is damaged"):
        _zstd.dictionary(1)
    with pytest.raises(UnknownFormat):
        _zstd.dictionary(7)


def test_dictionary_pays_for_itself_on_a_small_object() -> None:
    """A day of a 5-minute series with 3 decimals: the case the dictionary is for."""
    rng = np.random.default_rng(5)
    ts = np.arange(288, dtype=np.int64) * 300 * 10**9
    values = np.round(np.abs(20 + np.cumsum(rng.normal(0, 0.5, 288))), 3)
    snap = ProfileSnapshot("h", [MetricSeries("cpu", ts, values)])
    from snapcloud.codec._snapshot import _encode

    with_dict, without = _encode(snap, None, 3), _encode(snap, None, 3, dictionary=0)
    assert read_header(without).dictionary == 0
    assert decode(without) == snap == decode(with_dict)
    assert len(with_dict) < len(without) - 30
