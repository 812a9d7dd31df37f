"""What sampling costs: wall ms per sample and CPU % of one core at the sampling rate.

Runs ``CpuCollector`` (this host's psutil) and ``GpuCollector`` over the fake
8-GPU NVML of ``tests/collectors/fake_pynvml.py``, interleaved in one loop at
``--interval`` (default 1 Hz), for the default fields and with opt-in groups.
The GPU numbers are the collector's own Python cost plus the fake's: a real
NVML call (ctypes into the driver) costs more than a fake one, so read them as
a floor for the collector and measure on hardware with
``python -m snapcloud.collectors.gpu --samples 10``. PCIe throughput calls are
simulated at their documented 20 ms each (``--pcie-delay-ms``).

    python benchmarks/collector_cost.py --duration 60 --interval 1
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "collectors"))
if importlib.util.find_spec("snapcloud") is None:
    sys.path.insert(0, str(ROOT))

from fake_pynvml import make_fake_nvml  # noqa: E402

from snapcloud.collectors import CpuCollector, GpuCollector  # noqa: E402


@dataclass
class Probe:
    """Timings of one collect function, one entry per tick."""

    label: str
    collect: Callable[[], Sequence[object]]
    wall_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    samples: int = 0

    def tick(self) -> None:
        c0, w0 = time.thread_time(), time.perf_counter()
        self.samples = len(self.collect())
        self.wall_ms.append((time.perf_counter() - w0) * 1e3)
        self.cpu_s += time.thread_time() - c0


def _row(label: str, probes: list[Probe], seconds: float) -> str:
    ticks = len(probes[0].wall_ms)
    wall = [sum(p.wall_ms[i] for p in probes) for i in range(ticks)]
    steady = wall[1:] or wall  # the first sample learns what is supported
    p99 = statistics.quantiles(steady, n=100)[98] if len(steady) > 1 else steady[0]
    cpu_pct = 100.0 * sum(p.cpu_s for p in probes) / seconds
    samples = sum(p.samples for p in probes)
    return (
        f"| {label:<44} | {samples:>12} | {statistics.fmean(steady):>9.3f} | "
        f"{statistics.median(steady):>8.3f} | {p99:>8.3f} | {cpu_pct:>15.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    """Sample every configuration once per tick for ``--duration`` seconds and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds per tick (default 1)")
    parser.add_argument("--gpus", type=int, default=8, help="fake GPUs (default 8)")
    parser.add_argument(
        "--pcie-delay-ms", type=float, default=20.0, help="simulated cost of one PCIe call"
    )
    args = parser.parse_args(argv)
    cmd = " ".join(["python benchmarks/collector_cost.py", *(argv or sys.argv[1:])])

    all_groups = {"pcie", "processes", "xid", "gpm"}
    cpu = CpuCollector()
    gpus = {
        "default": GpuCollector(make_fake_nvml(device_count=args.gpus)),
        "opt-in: processes,xid,gpm": GpuCollector(
            make_fake_nvml(device_count=args.gpus), opt_in=all_groups - {"pcie"}
        ),
        "opt-in: all (+pcie)": GpuCollector(
            make_fake_nvml(device_count=args.gpus, pcie_delay_s=args.pcie_delay_ms / 1e3),
            opt_in=all_groups,
        ),
    }
    probes = {"cpu": Probe("cpu", cpu.collect)} | {
        name: Probe(name, g.collect) for name, g in gpus.items()
    }
    cpu.collect()  # primes cpu_percent, as the recorder's first tick does

    start = time.monotonic()
    deadline = start
    while deadline - start < args.duration:
        for probe in probes.values():
            probe.tick()
        deadline += args.interval
        time.sleep(max(0.0, deadline - time.monotonic()))
    seconds = time.monotonic() - start
    for g in gpus.values():
        g.close()

    ticks = len(probes["cpu"].wall_ms)
    print(f"command: {cmd}")
    print(
        f"{ticks} ticks at {1 / args.interval:g} Hz over {seconds:.1f} s; GPU = fake "
        f"{args.gpus}x H100 NVML; PCIe calls simulated at {args.pcie_delay_ms:g} ms"
    )
    print()
    print(
        f"| {'collectors':<44} | samples/tick | mean ms   | p50 ms   | p99 ms   | CPU % of 1 core |"
    )
    print(f"|{'-' * 46}|-------------:|----------:|---------:|---------:|----------------:|")
    print(_row("cpu (psutil, this host)", [probes["cpu"]], seconds))
    for name in gpus:
        print(_row(f"gpu {name}", [probes[name]], seconds))
    for name in gpus:
        print(_row(f"cpu + gpu {name}", [probes["cpu"], probes[name]], seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
