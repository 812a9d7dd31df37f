"""The demo: a small synthetic fleet stored, counted and queried (``snapcloud demo``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from snapcloud.models import SnapshotQuery
from snapcloud.store import Repository, StreamStats
from snapcloud.synth import host_snapshots

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    """What the demo stored and what its query answered."""

    stats: list[StreamStats]
    power_by_host: dict[str, tuple[float, float]]  # host -> (mean W, max W) over the last window
    requests: dict[str, int]
    bit_exact: bool


def run_demo(repo: Repository, *, hosts: int = 4, windows: int = 30, seed: int = 7) -> DemoResult:
    """Append ``windows`` one-minute snapshots for each of ``hosts`` synthetic GPU hosts,
    read them back bit-exact, and ask for GPU power over the last ten minutes."""
    bit_exact = True
    minute = 60 * 10**9
    start_ns = (time.time_ns() // minute - windows) * minute
    stats = []
    power: dict[str, tuple[float, float]] = {}
    for h in range(hosts):
        snaps = host_snapshots(h, windows, seed=seed, start_ns=start_ns)
        host = snaps[0].host
        stream = repo.stream(host, create=True)
        first = stream.next_seq
        for snap in snaps:
            stream.append(snap)
        for i, snap in enumerate(snaps):
            bit_exact &= stream.get(first + i) == snap.with_seq(first + i)
        stats.append(stream.stats())
        repo.refresh_catalog(host)
        end = snaps[-1].window_end
        names = tuple(f"gpu.{g}.power_avg_mw" for g in range(8))
        q = SnapshotQuery(start_ns=end - 600 * 10**9, end_ns=end, metrics=names)
        values = [m.values for s in stream.query(q) for m in s.metrics]
        watts = np.concatenate(values) / 1000.0 if values else np.zeros(1)
        power[host] = (float(watts.mean()), float(watts.max()))
    return DemoResult(stats, power, repo.requests(), bit_exact)
