"""Hypothesis strategies shared by the codec and store tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from snapcloud.models import MetricSeries, ProfileSnapshot

SPECIAL_BITS = [
    0x7FF8000000000000,  # quiet NaN
    0xFFF8000000000000,  # negative quiet NaN
    0x7FF8000000000123,  # NaN with a payload
    0x7FF0000000000001,  # signalling NaN
    0x7FF0000000000000,  # +inf
    0xFFF0000000000000,  # -inf
    0x8000000000000000,  # -0.0
    0x0000000000000001,  # smallest subnormal
    0x7FEFFFFFFFFFFFFF,  # largest finite
]


def _bits_to_float(bits: list[int]) -> np.ndarray:
    return np.array(bits, dtype=np.uint64).view(np.float64)


@st.composite
def value_arrays(draw: st.DrawFn, n: int) -> np.ndarray:
    style = draw(st.sampled_from(["decimal", "int", "float", "bits", "const", "counter"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if style == "decimal":
        v = np.round(rng.normal(50, 30, n), draw(st.integers(0, 6)))
    elif style == "int":
        v = rng.integers(-(10**12), 10**12, n).astype(np.float64)
    elif style == "float":
        v = rng.normal(0, 10 ** draw(st.integers(-300, 300)), n)
    elif style == "bits":
        v = rng.integers(0, 2**63, n, dtype=np.int64).view(np.float64).copy()
    elif style == "const":
        v = np.full(n, draw(st.floats(allow_nan=True, allow_infinity=True)))
    else:
        v = np.cumsum(rng.integers(0, 10**6, n)).astype(np.float64)
    if n and draw(st.booleans()):
        k = draw(st.integers(1, n))
        idx = rng.integers(0, n, k)
        v[idx] = _bits_to_float(rng.choice(SPECIAL_BITS, k).tolist())
    return v


@st.composite
def timestamp_arrays(draw: st.DrawFn, n: int) -> np.ndarray:
    t0 = draw(st.integers(-(2**60), 2**60))
    if draw(st.booleans()):
        step = draw(st.integers(1, 10**12))
        return t0 + np.arange(n, dtype=np.int64) * step
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return t0 + np.cumsum(rng.integers(1, 10**10, n)).astype(np.int64)


@st.composite
def metric_series(draw: st.DrawFn, name: str, ts: np.ndarray | None = None) -> MetricSeries:
    n = int(ts.size) if ts is not None else draw(st.integers(0, 80))
    if ts is None:
        ts = draw(timestamp_arrays(n))
    return MetricSeries(
        name,
        ts,
        draw(value_arrays(n)),
        kind=draw(st.sampled_from(["gauge", "counter"])),
        unit=draw(st.sampled_from(["", "%", "W", "MiB"])),
    )


@st.composite
def snapshots(draw: st.DrawFn, host: str = "host-1") -> ProfileSnapshot:
    count = draw(st.integers(0, 8))
    shared = draw(timestamp_arrays(draw(st.integers(1, 70))))
    metrics = [
        draw(metric_series(f"m.{i}", shared if draw(st.booleans()) else None)) for i in range(count)
    ]
    return ProfileSnapshot(
        host,
        metrics,
        window_start=-(2**62),
        window_end=2**62,
        fingerprint=draw(st.sampled_from(["", "train", "infer"])),
        labels=draw(
            st.dictionaries(st.sampled_from(["gpu", "zone", "rack"]), st.text("abc", max_size=4))
        ),
        metadata={"n": draw(st.integers(0, 10))},
    )


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()
