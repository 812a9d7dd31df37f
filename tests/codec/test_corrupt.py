"""Corrupt, truncated, foreign and hostile bytes each give their typed error."""

from __future__ import annotations

import dataclasses
import json
import struct

import crc32c
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapcloud.codec import _format, _zstd, decode, encode_delta, encode_keyframe
from snapcloud.errors import (
    ChecksumMismatch,
    CorruptError,
    OversizedObject,
    TruncatedObject,
    UnknownFormat,
    WrongBase,
)
from snapcloud.models import MetricSeries, ProfileSnapshot


def _snap(seq: int = 0, shift: int = 0) -> ProfileSnapshot:
    ts = np.arange(60, dtype=np.int64) * 10**9 + shift
    return ProfileSnapshot(
        "h",
        [
            MetricSeries("a", ts, np.round(np.linspace(0, 100, 60), 1)),
            MetricSeries("b", ts, np.sin(np.arange(60.0))),
        ],
        seq=seq,
    )


def _refit(data: bytes, payload: bytes, decoded_size: int | None = None) -> bytes:
    """A well-framed object around ``payload`` (valid frame checksum), header kept."""
    header, _ = _format.unpack_frame(data)
    if decoded_size is not None:
        header = dataclasses.replace(header, decoded_size=decoded_size)
    return _format.pack_frame(header, payload)


def _payload(data: bytes) -> bytes:
    """The decompressed payload of an object."""
    header, payload = _format.unpack_frame(data)
    return _zstd.decompress(
        payload, header.decoded_size, version=2, number=header.dictionary, key=None
    )


def _compress(raw: bytes) -> bytes:
    return _zstd.compress(raw, 3)


def test_every_single_byte_change_is_detected() -> None:
    data = encode_keyframe(_snap())
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(CorruptError):
            decode(bytes(bad))


def test_truncated_at_every_length() -> None:
    data = encode_keyframe(_snap())
    for n in range(len(data)):
        with pytest.raises((TruncatedObject, UnknownFormat)):
            decode(data[:n])


def test_foreign_bytes() -> None:
    for blob in (b"", b"PK\x03\x04" + b"\0" * 100, b'{"json": true}', bytes(range(256))):
        with pytest.raises(CorruptError):
            decode(blob)


def test_unknown_version() -> None:
    data = bytearray(encode_keyframe(_snap()))
    data[4] = 3
    body = bytes(data[:-4])
    with pytest.raises(UnknownFormat, match="version 3"):
        decode(body + struct.pack("<I", crc32c.crc32c(body)))


def test_wrong_or_missing_base() -> None:
    base = _snap(0)
    delta = encode_delta(_snap(1, shift=60 * 10**9), base)
    with pytest.raises(WrongBase):
        decode(delta)
    with pytest.raises(WrongBase):
        decode(delta, base=_snap(0, shift=1))  # same seq, other content
    other = _snap(5)
    with pytest.raises(WrongBase):
        decode(delta, base=other)


def test_declared_size_over_limit_is_refused_before_decompressing() -> None:
    data = encode_keyframe(_snap())
    with pytest.raises(OversizedObject):
        decode(data, max_decoded_size=100)


def test_zstd_bomb_is_refused() -> None:
    data = encode_keyframe(_snap())
    bomb = _compress(b"\0" * (64 << 20))
    with pytest.raises(OversizedObject):
        decode(_refit(data, bomb, decoded_size=64 << 20), max_decoded_size=1 << 20)
    # A header that under-declares the frame's size is caught too.
    with pytest.raises(CorruptError):
        decode(_refit(data, bomb, decoded_size=1000))


def test_content_checksum_catches_a_reframed_payload() -> None:
    """A payload changed and re-framed with a valid frame CRC still fails the content check."""
    snap = _snap()
    data = encode_keyframe(snap)
    raw = bytearray(_payload(data))
    raw[-1] ^= 0x40  # last byte of the last section: a value bit
    payload = _compress(bytes(raw))
    with pytest.raises(ChecksumMismatch):
        decode(_refit(data, payload, decoded_size=len(raw)))


def _meta_mutations() -> list[dict[str, object]]:
    return [
        {"sec": [1, 2, 3]},
        {"vg": [[60, None, None, [0, 0], [0, 0], [9, 9], 0, 0, 0]]},
        {"vg": [[60, None, None, [0, 0], [0, 0], [1, 1], 0, 0, 0]]},
        {"vg": [[60, [0, 0], None, [0, 0], [0, 0], [1, 1], 0, 0, 0]]},
        {"vg": [[60, None, [5], [0], [0], [1], 0, 0, 0]]},
        {"vg": [[60, None, None, [0, 0], [3, 0], [1, 1], 0, 0, 0]]},
        {"vg": [[60, None, None, [0, 0], [0, 0], [1, 1], 10**6, 0, 0]]},
        {"t": "="},
        {"t": [["a"], "g", ["", ""]]},
        {"tg": [[0, 1, 10**15], 0]},
        {"tg": [["b", 0, 0], 0]},
        {"mt": [-1, 0]},
        {"tg": [[0, None, 60], 8]},
        {"tg": [[0, 1, -5], 0]},
        {"vg": [{"rows": [0, 9], "n": 60}]},
        {"same": [[0, 0]]},
        {"w": "nope"},
        {"h": 5},
        {"s": "1"},
        {"mt": [0, 2**70]},  # past int64: numpy refuses it, typed all the same
        {"vg": [[60, [0, 2**70], None, [0, 0], [0, 0], [1, 1], 0, 0, 0]]},
        {"vg": [[60, None, None, [0, 1.5], [0, 0], [1, 1], 0, 0, 0]]},
        {"m": {"x": float("nan")}},  # json.dumps writes NaN; the writer never does
        {"m": {"x": float("inf")}},
    ]


@pytest.mark.parametrize("change", _meta_mutations())
def test_malformed_meta_gives_corrupt_error(change: dict[str, object]) -> None:
    data = encode_keyframe(_snap())
    raw = _payload(data)
    (n,) = struct.unpack_from("<I", raw)
    meta = json.loads(raw[4 : 4 + n])
    meta.update(change)
    new_meta = json.dumps(meta).encode()
    new_raw = struct.pack("<I", len(new_meta)) + new_meta + raw[4 + n :]
    payload = _compress(new_raw)
    with pytest.raises(CorruptError):
        decode(_refit(data, payload, decoded_size=len(new_raw)))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_mutations_never_crash_or_lie(data: st.DataObject) -> None:
    snap = _snap()
    good = encode_keyframe(snap)
    blob = bytearray(good)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(blob) - 1)))
        if op == "flip" and blob:
            blob[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del blob[pos : pos + data.draw(st.integers(1, 16))]
        else:
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    try:
        out = decode(bytes(blob))
    except CorruptError:
        return
    assert out == snap  # only an unchanged object may decode


def test_meta_nested_too_deep_is_a_corrupt_error() -> None:
    """A meta nested 100,000 deep is refused by the parser: it must come out typed."""
    data = encode_keyframe(_snap())
    meta = b"[" * 100_000
    raw = struct.pack("<I", len(meta)) + meta
    payload = _compress(raw)
    with pytest.raises(CorruptError, match="malformed payload"):
        decode(_refit(data, payload, decoded_size=len(raw)))
