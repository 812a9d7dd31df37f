"""Retention benchmark: one simulated host, 1 Hz for 30 days, through every tier.

Run:  .venv/bin/python benchmarks/bench_retention.py [--days 30] [--metrics 16]

The host has 16 metrics (not the 113 of ``snapcloud.synth``, to keep the run to a
couple of minutes): CPU utilization (total and 4 cores, one decimal), memory
used, load, network byte counters, and one GPU's utilization, power, energy
counter, temperature, clocks and framebuffer, shaped like the recorder's (integer
or one-decimal readings, smoothed workload phases, counters). Windows of 60 s,
keyframe groups of 60 (the defaults), an in-memory object store, the clock
injected (``now_ns``), the default policy (raw 1 d, compressed 30 d, archive
365 d, deletion delay 2 h).

Phases, each measured after the deletion delay has passed (marked objects gone):
1. raw: every window appended;
2. compressed: the compactor as of one day after the last window, with the archive
   age pushed out so that only raw -> compressed happens (its throughput is the
   compaction throughput, one core);
3. archive: as of 31 days after the last window, default policy.

Prints a markdown table (objects and bytes per tier, and per host-day) and the checks
the issue asks for: raw -> compressed cuts data objects by at least the keyframe
interval and bytes by at least 15 %.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapcloud.backends import MemoryStore
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig, SnapshotQuery
from snapcloud.retention import DAY_NS, HOUR_NS, Compactor, RetentionPolicy, storage_by_tier
from snapcloud.store import HostStream

NS = 10**9
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
HOST = "gpu-node-0001"
WINDOW_S = 60


def _phases(rng: np.random.Generator, n: int) -> np.ndarray:
    """A workload level in [0, 1] per second: phases of 2-20 minutes."""
    out = np.empty(n)
    pos = 0
    while pos < n:
        length = int(rng.integers(120, 1200))
        out[pos : pos + length] = rng.choice([0.02, 0.3, 0.95, 0.95, 0.95, 0.2])
        pos += length
    return out


def _smooth(rng: np.random.Generator, target: np.ndarray, noise: float) -> np.ndarray:
    kernel = 0.3 * 0.7 ** np.arange(24)
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(kernel.size - 1, target[0]), target])
    return np.convolve(padded, kernel, mode="valid") + rng.normal(0, noise, target.size)


def day_series(
    day: int, metrics: int, carry: dict[str, float]
) -> list[tuple[str, str, str, np.ndarray]]:
    """One day of every metric: ``(name, kind, unit, values)``; counters continue ``carry``."""
    n = 86_400
    rng = np.random.default_rng([7, day])
    level = _phases(rng, n)
    cpu = np.clip(_smooth(rng, 5 + 60 * level, 1.5), 0, 100)
    gpu = np.clip(np.round(_smooth(rng, 100 * level, 2.0)), 0, 100)
    power = np.round(np.clip(_smooth(rng, 0.1 + 0.85 * level, 0.02), 0.08, 1.0) * 70_000) * 10
    temp = np.round(35 + gpu * 0.4 + rng.normal(0, 0.6, n))
    net = np.maximum(0, 900e6 * level * rng.lognormal(0, 0.2, n))

    def counter(name: str, steps: np.ndarray) -> np.ndarray:
        values = carry.get(name, 0.0) + np.cumsum(steps)
        carry[name] = float(values[-1])
        return values

    series = [
        ("cpu.util", "gauge", "%", np.round(cpu, 1)),
        *[
            (f"cpu.{c}.util", "gauge", "%", np.round(np.clip(cpu + rng.normal(0, 4, n), 0, 100), 1))
            for c in range(4)
        ],
        ("mem.used", "gauge", "B", np.round(2**38 * (0.2 + 0.5 * level + rng.normal(0, 0.002, n)))),
        ("load.1", "gauge", "", np.round(cpu * 0.32, 2)),
        ("net.rx_bytes", "counter", "B", counter("net.rx_bytes", np.round(net * 0.6))),
        ("net.tx_bytes", "counter", "B", counter("net.tx_bytes", np.round(net * 0.4))),
        ("gpu.0.util_pct", "gauge", "%", gpu),
        ("gpu.0.power_mw", "gauge", "mW", power),
        ("gpu.0.energy_mj", "counter", "mJ", counter("gpu.0.energy_mj", power)),
        ("gpu.0.temp_c", "gauge", "C", temp),
        ("gpu.0.sm_clock_mhz", "gauge", "MHz", np.where(gpu > 50, 1980.0, 1755.0)),
        ("gpu.0.mem_clock_mhz", "gauge", "MHz", np.full(n, 2619.0)),
        (
            "gpu.0.fb_used_mib",
            "gauge",
            "MiB",
            np.round(np.clip(2000 + gpu * 760 + rng.normal(0, 30, n), 0, 81559)),
        ),
    ]
    return series[:metrics]


def write(
    objects: MemoryStore, config: SnapshotConfig, days: int, metrics: int
) -> tuple[int, float]:
    """Append ``days`` of 60 s windows; return (samples, seconds)."""
    stream = HostStream(objects, HOST, config)
    carry: dict[str, float] = {}
    samples = 0
    started = time.perf_counter()
    labels = {"gpu.model": "NVIDIA H100 80GB HBM3", "gpu.count": "1"}
    for day in range(days):
        series = day_series(day, metrics, carry)
        ts = T0 + (day * 86_400 + np.arange(86_400, dtype=np.int64)) * NS
        for w in range(86_400 // WINDOW_S):
            sl = slice(w * WINDOW_S, (w + 1) * WINDOW_S)
            ms = [MetricSeries.trusted(n, k, u, ts[sl], v[sl]) for n, k, u, v in series]
            snap = ProfileSnapshot(
                HOST,
                ms,
                window_start=int(ts[sl][0]),
                window_end=int(ts[sl][-1]) + NS,
                fingerprint="llm-train",
                labels=labels,
            )
            stream.append(snap)
            samples += snap.sample_count
    return samples, time.perf_counter() - started


def usage(objects: MemoryStore) -> dict[str, tuple[int, int, int, int]]:
    """tier -> (data objects, data bytes, index objects, index bytes)."""
    return {
        r.tier: (r.objects, r.bytes, r.index_objects, r.index_bytes)
        for r in storage_by_tier(objects, [HOST])
        if r.tier != "marks"
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--metrics", type=int, default=16)
    args = ap.parse_args()
    config = SnapshotConfig()
    objects = MemoryStore()
    samples, secs = write(objects, config, args.days, args.metrics)
    end = T0 + args.days * DAY_NS
    stages = {"raw": usage(objects)}

    # raw -> compressed only (archive age pushed out), one run; then the marks are due.
    only_compress = RetentionPolicy.from_config(
        config, compressed_max_age_ns=10_000 * DAY_NS, archive_max_age_ns=10_000 * DAY_NS
    )
    compactor = Compactor(objects, config, only_compress)
    report = compactor.run(end + config.raw_max_age_ns)
    throughput = report.samples_compacted / report.seconds
    compactor.run(end + config.raw_max_age_ns + config.delete_delay_ns)
    stages["compressed"] = usage(objects)
    check = HostStream(objects, HOST, config)
    full = sum(
        s.sample_count for s in check.query(SnapshotQuery(start_ns=T0, end_ns=T0 + 6 * HOUR_NS))
    )

    # -> archive with the default policy (every day past 30 days).
    archiver = Compactor(objects, config)
    arch = archiver.run(end + 31 * DAY_NS)
    archiver.run(end + 31 * DAY_NS + config.delete_delay_ns)
    stages["archive"] = usage(objects)

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"{args.days} days x 86400 s x {args.metrics} metrics = {samples:,} samples, "
        f"60 s windows, keyframe interval {config.keyframe_interval}; "
        f"append {samples / secs / 1e6:.2f} M samples/s"
    )
    print()
    print(
        "| stage | tier | data objects | data bytes | index objects | index bytes "
        "| objects / host-day | bytes / host-day | B/sample |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for stage, tiers in stages.items():
        for tier, (n, b, ni, bi) in tiers.items():
            if n == 0 and ni == 0:
                continue
            print(
                f"| after {stage} | {tier} | {n:,} | {b:,} | {ni:,} | {bi:,} | "
                f"{(n + ni) / args.days:,.1f} | {(b + bi) / args.days:,.0f} | "
                f"{(b + bi) / samples:.3f} |"
            )
    raw_n, raw_b, raw_ni, raw_bi = stages["raw"]["raw"]
    c = stages["compressed"]
    # The compacted groups: every raw object that went, against what replaced it (the
    # stream's last, still-growing group stays raw).
    moved_n, moved_b = raw_n - c["raw"][0], raw_b - c["raw"][1]
    moved_ni, moved_bi = raw_ni - c["raw"][2], raw_bi - c["raw"][3]
    comp_n, comp_b, comp_ni, comp_bi = c["compressed"]
    print()
    print(
        f"raw -> compressed, compacted groups: data objects {moved_n:,} -> {comp_n:,} "
        f"({moved_n / comp_n:.1f}x fewer); with index objects {moved_n + moved_ni:,} -> "
        f"{comp_n + comp_ni:,} ({(moved_n + moved_ni) / (comp_n + comp_ni):.1f}x)"
    )
    print(
        f"raw -> compressed, compacted groups: data bytes {moved_b:,} -> {comp_b:,} "
        f"({100 * (1 - comp_b / moved_b):.1f} % smaller); with index bytes "
        f"{100 * (1 - (comp_b + comp_bi) / (moved_b + moved_bi)):.1f} % smaller"
    )
    print(
        f"compaction throughput (raw -> compressed, one core, in-memory store): "
        f"{throughput / 1e6:.2f} M samples/s ({report.samples_compacted:,} samples in "
        f"{report.seconds:.1f} s; {report.requests.get('get', 0):,} GET, "
        f"{report.requests.get('put', 0):,} PUT, {report.requests.get('list', 0):,} LIST)"
    )
    print(
        f"archive run: {arch.samples_compacted / arch.seconds / 1e6:.2f} M samples/s downsampled "
        f"({arch.samples_compacted:,} samples in {arch.seconds:.1f} s)"
    )
    print(f"a 6 h query served from the compressed tier: {full:,} samples")
    ok_objects = moved_n / comp_n >= config.keyframe_interval
    ok_bytes = comp_b <= 0.85 * moved_b
    print(
        f"checks: data objects cut by >= the keyframe interval: {'yes' if ok_objects else 'NO'}; "
        f"bytes cut by >= 15 %: {'yes' if ok_bytes else 'NO'}"
    )


if __name__ == "__main__":
    main()
