"""Small host streams and checks shared by the retention tests.

Each host writes windows of ``window_s`` seconds at 1 Hz with three metrics: a
one-decimal gauge, a counter (with a reset), and a gauge with NaN holes. Ages are
scaled down (hours instead of days) so a few windows span every tier.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from snapcloud.backends import ObjectStore
from snapcloud.codec import META_TIER
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig, SnapshotQuery
from snapcloud.store import HostStream

NS = 10**9
HOUR = 3600 * NS
DAY = 24 * HOUR
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z

#: raw 6 h, compressed 1 d, archive 2 d, marks deleted after 1 h; groups of 4 windows.
CONFIG = SnapshotConfig(
    keyframe_interval=4,
    raw_max_age_ns=6 * HOUR,
    compressed_max_age_ns=1 * DAY,
    archive_max_age_ns=2 * DAY,
    delete_delay_ns=1 * HOUR,
)


def make_snapshots(
    host: str,
    count: int,
    *,
    window_s: int = 3600,
    step_s: int = 1,
    seed: int = 0,
    start_ns: int = T0,
) -> list[ProfileSnapshot]:
    """``count`` consecutive windows of one host, a sample every ``step_s`` seconds."""
    rng = np.random.default_rng(seed)
    out = []
    total = 0.0
    n = window_s // step_s
    for w in range(count):
        ts = start_ns + (w * window_s + np.arange(n, dtype=np.int64) * step_s) * NS
        gauge = np.round(rng.normal(50, 10, n), 1)
        steps = np.cumsum(rng.integers(0, 1000, n)).astype(np.float64)
        counter = (0.0 if w == 3 else total) + steps  # reset at the start of window 3
        if w == 5:
            counter[n // 2 :] -= counter[n // 2 - 1]  # and one mid-window
        total = float(counter[-1])
        holes = rng.normal(0, 1, n)
        holes[rng.integers(0, n, n // 10)] = np.nan
        out.append(
            ProfileSnapshot(
                host,
                [
                    MetricSeries("util", ts, gauge, unit="%"),
                    MetricSeries("bytes", ts, counter, kind="counter", unit="B"),
                    MetricSeries("holes", ts, holes),
                ],
                window_start=int(ts[0]),
                window_end=int(ts[-1]) + step_s * NS,
                fingerprint="train" if w % 7 < 5 else "eval",
                labels={"gpu": "H100"},
                metadata={"w": w},
            )
        )
    return out


def write_host(
    objects: ObjectStore, host: str, count: int, config: SnapshotConfig = CONFIG, **kw: int
) -> list[ProfileSnapshot]:
    """Append ``count`` windows; return them with their seqs."""
    stream = HostStream(objects, host, config)
    snaps = make_snapshots(host, count, **kw)
    for s in snaps:
        stream.append(s)
    return [s.with_seq(i) for i, s in enumerate(snaps)]


def check_reads(
    objects: ObjectStore,
    host: str,
    originals: list[ProfileSnapshot],
    now_ns: int | None = None,
    config: SnapshotConfig = CONFIG,
) -> dict[str, set[int]]:
    """Query everything and check it: full-resolution snapshots bit-exact, no seq twice
    across tiers, archive aggregates consistent with the originals; with ``now_ns``,
    every group not yet past ``archive_max_age`` covered. Returns seqs per tier."""
    stream = HostStream(objects, host, config)
    by_seq = {s.seq: s for s in originals}
    seen: dict[str, set[int]] = {"full": set(), "archive": set()}
    for snap in stream.query(SnapshotQuery()):
        if META_TIER in snap.metadata:
            first = int(snap.metadata["snapcloud.source_first_seq"])
            last = int(snap.metadata["snapcloud.source_last_seq"])
            sources = [
                s for s in originals if first <= s.seq <= last and s.fingerprint == snap.fingerprint
            ]
            seqs = {s.seq for s in sources}
            assert not seqs & (seen["full"] | seen["archive"]), "seq read twice"
            seen["archive"] |= seqs
            check_archive(snap, sources)
        else:
            assert snap.seq not in seen["full"] | seen["archive"], f"seq {snap.seq} read twice"
            assert snap == by_seq[snap.seq], f"seq {snap.seq} differs"
            assert snap.checksum == by_seq[snap.seq].checksum
            seen["full"].add(snap.seq)
    if now_ns is not None:
        got = seen["full"] | seen["archive"]
        for s in originals:
            group_end = max(
                o.window_end
                for o in originals
                if o.seq // config.keyframe_interval == s.seq // config.keyframe_interval
            )
            if group_end + config.archive_max_age_ns > now_ns:
                assert s.seq in got, f"seq {s.seq} lost"
    return seen


def check_archive(snap: ProfileSnapshot, sources: Iterable[ProfileSnapshot]) -> None:
    """Aggregates of a finest-resolution archive snapshot against its sources."""
    sources = list(sources)
    res = int(snap.metadata["snapcloud.resolution_ns"])
    for name in ("util", "bytes", "holes"):
        ts = np.concatenate([s.metric(name).timestamps for s in sources])
        vs = np.concatenate([s.metric(name).values for s in sources])
        count = snap.metric(f"{name}:count").values
        assert count.sum() == np.count_nonzero(~np.isnan(vs))
        buckets = snap.metric(f"{name}:count").timestamps
        assert np.array_equal(np.unique(ts // res) * res, buckets)
        assert np.nanmax(vs) == np.nanmax(snap.metric(f"{name}:max").values)
        assert np.nanmin(vs) == np.nanmin(snap.metric(f"{name}:min").values)
        total = snap.metric(f"{name}:sum").values.sum()
        assert abs(total - np.nansum(vs)) <= 1e-9 * max(1.0, abs(np.nansum(vs)))
