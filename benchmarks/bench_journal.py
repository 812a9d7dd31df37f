"""What the sample journal costs the recorder: CPU per tick at 1 Hz with 8 GPUs.

Run:  .venv/bin/python benchmarks/bench_journal.py [--ticks 3600] [--window 60] [--gpus 8]

The samples are real: ``CpuCollector`` (this host's psutil) and ``GpuCollector`` over
the fake 8-GPU NVML C library of ``tests/collectors/fake_nvml.c`` under the real pynvml
(default fields), plus the sampler's three ``recorder.*`` samples, collected once. The
journal's cost depends on how many samples a tick has, not on where they came from, so
the fake NVML is fine here (its own cost is not measured). Each tick is journaled as the
recorder does it (``Journal.tick``), on a file in a temporary directory of this
machine's disk, with the default fsync schedule (every 5 s of the injected clock, which
moves 1 s a tick, as at 1 Hz: so a real fsync every 5th tick); every ``--window`` ticks
the window is sealed (``Journal.seal`` with the window's snapshot, then ``reset``), as
the recorder does. Reported: CPU (thread time) and wall time per tick and per seal, and
the CPU share of one core at 1 Hz, the target being under 1 %.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "collectors"))

import numpy as np  # noqa: E402
import pynvml  # noqa: E402
from nvml_fake import FakeNvml, build_library, load_library  # noqa: E402

from snapcloud.collectors import CpuCollector, GpuCollector, Sample  # noqa: E402
from snapcloud.models import MetricSeries, ProfileSnapshot  # noqa: E402
from snapcloud.recorder._journal import Journal  # noqa: E402
from snapcloud.recorder._sampler import Tick  # noqa: E402

S = 10**9


def _window(host: str, ticks: list[Tick]) -> ProfileSnapshot:
    """The window the ticks make (one series per metric, every tick), as the sampler seals it."""
    ts = np.array([t.ts for t in ticks], dtype=np.int64)
    names = sorted({s.name for s in ticks[0].samples})
    values = {n: [] for n in names}
    meta = {s.name: s for s in ticks[0].samples}
    for t in ticks:
        for s in t.samples:
            values[s.name].append(s.value)
    metrics = [
        MetricSeries(n, ts, np.array(values[n]), kind=meta[n].kind, unit=meta[n].unit)
        for n in names
    ]
    return ProfileSnapshot(
        host,
        metrics,
        window_start=int(ts[0]),
        window_end=int(ts[-1]) + S,
        metadata={"spool_id": "0" * 32},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=3600)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--gpus", type=int, default=8)
    args = ap.parse_args()
    cpu = CpuCollector()
    fake = FakeNvml(load_library(build_library())).reset(args.gpus)
    fake.install(pynvml)  # the real pynvml over the fake C library, as collector_cost.py
    gpu = GpuCollector(pynvml)
    cpu.collect()  # primes cpu_percent, as the recorder's first tick does
    samples: list[Sample] = [*cpu.collect(), *gpu.collect()]
    samples += [
        Sample("recorder.late_ms", 0.25, "gauge", "ms"),
        Sample("recorder.skipped_ticks", 0.0, "counter", "count"),
        Sample("recorder.collect_ms", 3.5, "gauge", "ms"),
    ]
    gpu.close()
    fake.uninstall()
    rng = np.random.default_rng(1)
    now = [0.0]
    tick_cpu: list[float] = []
    tick_wall: list[float] = []
    seal_cpu: list[float] = []
    seal_wall: list[float] = []
    with tempfile.TemporaryDirectory(dir=str(ROOT)) as tmp:
        journal = Journal(tmp, clock=lambda: now[0])
        pending: list[Tick] = []
        size = 0
        t0 = 1_767_225_600 * S
        for k in range(args.ticks):
            now[0] = float(k)
            jitter = rng.normal(0, 1, len(samples))
            tick = Tick(
                t0 + k * S,
                t0 + (k // args.window) * args.window * S,
                [
                    Sample(s.name, s.value + j, s.kind, s.unit)
                    for s, j in zip(samples, jitter, strict=True)
                ],
            )
            c, w = time.thread_time(), time.perf_counter()
            journal.tick(tick)
            tick_cpu.append(time.thread_time() - c)
            tick_wall.append(time.perf_counter() - w)
            pending.append(tick)
            if len(pending) == args.window:
                size = max(size, (Path(tmp) / "journal").stat().st_size)
                snap = _window("bench", pending)
                c, w = time.thread_time(), time.perf_counter()
                journal.seal(snap)
                journal.reset()
                seal_cpu.append(time.thread_time() - c)
                seal_wall.append(time.perf_counter() - w)
                pending = []
        fsyncs = journal.fsyncs
        journal.close()
    per_tick_cpu = statistics.fmean(tick_cpu)
    per_seal_cpu = statistics.fmean(seal_cpu) if seal_cpu else 0.0
    share = 100 * (per_tick_cpu + per_seal_cpu / args.window)  # one tick a second
    p99 = statistics.quantiles(tick_wall, n=100)[98]
    print("command: .venv/bin/python benchmarks/bench_journal.py " + " ".join(sys.argv[1:]))
    print(
        f"{args.ticks} ticks of {len(samples)} samples (psutil CPU + fake {args.gpus}-GPU NVML, "
        f"default fields); window {args.window} ticks; {fsyncs} fsyncs; the journal file "
        f"holds up to {size} bytes (a full window, before its seal empties it)"
    )
    print()
    print("| step | CPU us (mean) | wall us (mean) | wall us (p99) | per second at 1 Hz |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| Journal.tick | {per_tick_cpu * 1e6:.1f} | {statistics.fmean(tick_wall) * 1e6:.1f} "
        f"| {p99 * 1e6:.1f} | 1 |"
    )
    if seal_cpu:
        print(
            f"| Journal.seal + reset | {per_seal_cpu * 1e6:.1f} | "
            f"{statistics.fmean(seal_wall) * 1e6:.1f} | - | 1/{args.window} |"
        )
    print()
    print(f"CPU share of one core at 1 Hz: **{share:.3f} %** (target: under 1 %)")


if __name__ == "__main__":
    main()
