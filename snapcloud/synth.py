"""Synthetic fleet streams shaped like what the recorder writes (for demos and benchmarks).

One host: 32 CPU cores (percent with one decimal), memory, disk and network
byte counters, 8 GPUs (integer util %, bytes, mW, C, MHz, an energy counter in
mJ, a throttle bitmask), sampled at 1 Hz through workload phases (idle, data
loading, training, checkpointing). Deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from snapcloud.models import MetricSeries, ProfileSnapshot

__all__ = ["fleet_snapshots", "host_snapshots"]

_NS = 1_000_000_000
# (gpu util, cpu util, power fraction, disk MB/s, net MB/s) per phase
_PHASES = {
    "idle": (0.0, 3.0, 0.10, 0.1, 0.05),
    "load": (15.0, 55.0, 0.30, 400.0, 50.0),
    "train": (96.0, 22.0, 0.92, 5.0, 900.0),
    "checkpoint": (5.0, 35.0, 0.25, 1500.0, 10.0),
}
_PHASE_CYCLE = ("idle", "load", "train", "train", "train", "checkpoint", "train", "train")


def _phase_plan(rng: np.random.Generator, n: int) -> np.ndarray:
    """A phase name per second: phases last 2-20 minutes, cycling like a training job."""
    out = np.empty(n, dtype=object)
    pos, k = 0, int(rng.integers(len(_PHASE_CYCLE)))
    while pos < n:
        length = int(rng.integers(120, 1200))
        out[pos : pos + length] = _PHASE_CYCLE[k % len(_PHASE_CYCLE)]
        pos += length
        k += 1
    return out


def _smooth(rng: np.random.Generator, target: np.ndarray, noise: float) -> np.ndarray:
    """Follow a step target with a first-order lag plus noise, as real utilization does."""
    kernel = 0.3 * 0.7 ** np.arange(24)
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(kernel.size - 1, target[0]), target])
    lagged = np.convolve(padded, kernel, mode="valid")
    return lagged + rng.normal(0.0, noise, target.size)


def host_series(
    host_index: int, seconds: int, *, start_ns: int, seed: int = 0
) -> list[MetricSeries]:
    """All metrics of one host over ``seconds`` seconds at 1 Hz."""
    rng = np.random.default_rng([seed, host_index])
    ts = start_ns + np.arange(seconds, dtype=np.int64) * _NS
    phases = _phase_plan(rng, seconds)
    table = np.array([_PHASES[p] for p in phases], dtype=np.float64)
    gpu_t, cpu_t, pow_t, disk_t, net_t = table.T
    metrics: list[MetricSeries] = []

    def add(name: str, values: np.ndarray, unit: str, kind: str = "gauge") -> None:
        metrics.append(MetricSeries(name, ts, values, kind=kind, unit=unit))

    cpu_base = _smooth(rng, cpu_t, 1.5)
    for core in range(32):
        per = np.clip(cpu_base + rng.normal(0, 4.0, seconds) * (core % 4 + 1) / 2, 0, 100)
        add(f"cpu.{core}.util", np.round(per, 1), "%")
    add("cpu.util", np.round(np.clip(cpu_base, 0, 100), 1), "%")
    mem_total = 1024 * 2**30
    mem_used = np.round(mem_total * (0.2 + 0.5 * (gpu_t / 100) + rng.normal(0, 0.002, seconds)))
    add("mem.used", mem_used, "B")
    add("mem.available", mem_total - mem_used, "B")
    add("mem.total", np.full(seconds, float(mem_total)), "B")
    disk_rate = np.maximum(0, disk_t * 1e6 * rng.lognormal(0, 0.3, seconds))
    add("disk.read_bytes", np.cumsum(np.round(disk_rate * 0.7 / 4096) * 4096), "B", "counter")
    add("disk.write_bytes", np.cumsum(np.round(disk_rate * 0.3 / 4096) * 4096), "B", "counter")
    net = np.maximum(0, net_t * 1e6 * rng.lognormal(0, 0.2, seconds))
    add("net.rx_bytes", np.cumsum(np.round(net * 0.6)), "B", "counter")
    add("net.tx_bytes", np.cumsum(np.round(net * 0.4)), "B", "counter")
    add("load.1", np.round(np.clip(cpu_base, 0, None) * 0.32, 2), "")
    for g in range(8):
        util = np.clip(np.round(_smooth(rng, gpu_t, 2.0)), 0, 100)
        add(f"gpu.{g}.util_pct", util, "%")
        add(
            f"gpu.{g}.mem_util_pct",
            np.clip(np.round(util * 0.6 + rng.normal(0, 2, seconds)), 0, 100),
            "%",
        )
        fb_mib = np.round(np.clip(2000 + util * 760 + rng.normal(0, 30, seconds), 0, 81559))
        add(f"gpu.{g}.fb_used_bytes", fb_mib * 2**20, "bytes")
        power_mw = np.round(np.clip(_smooth(rng, pow_t, 0.02), 0.08, 1.0) * 700_000 / 10) * 10
        add(f"gpu.{g}.power_avg_mw", power_mw, "mW")
        add(f"gpu.{g}.energy_mj", np.cumsum(power_mw) + g * 1e9, "mJ", "counter")
        temp = np.round(35 + util * 0.4 + rng.normal(0, 0.6, seconds))
        add(f"gpu.{g}.temp_c", temp, "C")
        sm = np.where(util > 50, 1980, 1755) - 15 * (temp > 80) * rng.integers(0, 20, seconds)
        add(f"gpu.{g}.sm_clock_mhz", sm.astype(np.float64), "MHz")
        add(f"gpu.{g}.mem_clock_mhz", np.full(seconds, 2619.0), "MHz")
        throttle = np.where(power_mw > 690_000, 4.0, 0.0) + np.where(util < 5, 1.0, 0.0)
        add(f"gpu.{g}.clock_event_reasons", throttle, "")
    return metrics


def host_snapshots(
    host_index: int,
    count: int,
    *,
    window_s: int = 60,
    start_ns: int = 1_767_225_600 * _NS,
    seed: int = 0,
) -> list[ProfileSnapshot]:
    """``count`` consecutive windows of one synthetic host (seq left for the store)."""
    host = f"gpu-node-{host_index:04d}"
    series = host_series(host_index, count * window_s, start_ns=start_ns, seed=seed)
    labels = {"gpu.model": "NVIDIA H100 80GB HBM3", "gpu.count": "8", "cluster": "synthetic"}
    out = []
    for w in range(count):
        lo, hi = w * window_s, (w + 1) * window_s
        ms = [
            MetricSeries.trusted(m.name, m.kind, m.unit, m.timestamps[lo:hi], m.values[lo:hi])
            for m in series
        ]
        out.append(
            ProfileSnapshot(
                host,
                ms,
                window_start=start_ns + lo * _NS,
                window_end=start_ns + hi * _NS,
                fingerprint="llm-train" if host_index % 3 else "inference",
                labels=labels,
                metadata={"generator": "snapcloud.synth"},
            )
        )
    return out


def fleet_snapshots(hosts: int, count: int, **kwargs: int) -> Iterator[ProfileSnapshot]:
    """Every host's windows, host by host."""
    for h in range(hosts):
        yield from host_snapshots(h, count, **kwargs)
