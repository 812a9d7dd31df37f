"""Downsampling windows that overlap (a re-import, a clock that stepped back): counter
increase, first and last follow time within a group, not storage order."""

from __future__ import annotations

import numpy as np

from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.retention import Downsampler

S = 10**9
MIN = 60 * S


def snap(seq: int, ts: list[int], values: list[float]) -> ProfileSnapshot:
    m = MetricSeries("bytes_total", np.array(ts) * S, values, kind="counter")
    return ProfileSnapshot("h", [m], window_start=0, window_end=60 * S).with_seq(seq)


def test_overlapping_windows_are_downsampled_by_time() -> None:
    # stored order: seconds 30..50, then 0..20 (the same minute, stored late)
    ds = Downsampler("h", [MIN])
    ds.add([snap(0, [30, 40, 50], [30.0, 40.0, 50.0]), snap(1, [0, 10, 20], [0.0, 10.0, 20.0])])
    ((_, agg),) = ds.finish()
    got = {m.name.split(":")[1]: m.values.tolist() for m in agg.metrics}
    assert got["first"] == [0.0] and got["last"] == [50.0]
    assert got["increase"] == [50.0]  # 0 -> 50 by time; in stored order it read as a reset
    assert got["count"] == [6.0] and got["sum"] == [150.0]
