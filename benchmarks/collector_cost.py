"""What sampling costs: NVML calls, wall ms per sample and CPU % of one core at the sampling rate.

Runs ``CpuCollector`` (this host's psutil) and ``GpuCollector`` over the real
pynvml and the fake 8-GPU NVML C library of ``tests/collectors/fake_nvml.c``,
interleaved in one loop at ``--interval`` (default 1 Hz), for the default fields
and with opt-in groups. The fake answers from memory, so the GPU numbers are the
collector's own cost plus pynvml's and ctypes', with NVML's own work (the
driver, the GPU) left out: NOT hardware figures. Count NVML calls here; measure
time on a GPU host (``scripts/gpu_hw_check.sh``). PCIe throughput calls block
``--pcie-delay-ms`` (20 ms, as the driver documents).

``--code DIR`` imports ``snapcloud`` from another checkout (e.g. main), so a
baseline can be measured on the same fake in the same session:

    python benchmarks/collector_cost.py --duration 60
    python benchmarks/collector_cost.py --duration 60 --code /tmp/main-checkout
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_path(argv: Sequence[str]) -> Path:
    for i, arg in enumerate(argv):
        if arg == "--code" and i + 1 < len(argv):
            return Path(argv[i + 1]).resolve()
        if arg.startswith("--code="):
            return Path(arg.split("=", 1)[1]).resolve()
    return ROOT


CODE = _import_path(sys.argv[1:])
sys.path.insert(0, str(CODE))
sys.path.insert(0, str(ROOT / "tests" / "collectors"))

import pynvml  # noqa: E402
from nvml_fake import FakeNvml, build_library, load_library  # noqa: E402

from snapcloud.collectors import OPT_IN, CpuCollector, GpuCollector  # noqa: E402


@dataclass
class Probe:
    """Timings and NVML calls of one collect function, one entry per tick."""

    label: str
    collect: Callable[[], Sequence[object]]
    fake: FakeNvml | None = None
    wall_ms: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    samples: int = 0

    def tick(self) -> None:
        calls0 = self.fake.nvml_calls() if self.fake is not None else 0
        c0, w0 = time.thread_time(), time.perf_counter()
        self.samples = len(self.collect())
        self.wall_ms.append((time.perf_counter() - w0) * 1e3)
        self.cpu_s += time.thread_time() - c0
        if self.fake is not None:
            self.calls.append(self.fake.nvml_calls() - calls0)


def _row(label: str, probes: list[Probe], seconds: float, gpus: int) -> str:
    ticks = len(probes[0].wall_ms)
    wall = [sum(p.wall_ms[i] for p in probes) for i in range(ticks)]
    steady = wall[1:] or wall  # the first sample learns what is supported
    p99 = statistics.quantiles(steady, n=100)[98] if len(steady) > 1 else steady[0]
    cpu_pct = 100.0 * sum(p.cpu_s for p in probes) / seconds
    samples = sum(p.samples for p in probes)
    calls = [sum(p.calls[i] for p in probes if p.calls) for i in range(ticks)]
    per_gpu = statistics.fmean(calls[1:] or calls) / gpus if any(p.calls for p in probes) else 0
    return (
        f"| {label:<40} | {samples:>7} | {per_gpu:>9.2f} | {statistics.fmean(steady):>8.3f} | "
        f"{statistics.median(steady):>8.3f} | {p99:>8.3f} | {cpu_pct:>9.3f} |"
    )


def _configs() -> dict[str, set[str]]:
    if "state" in OPT_IN:  # this tree's groups
        return {
            "default": set(),
            "opt-in: processes,state,nvlink_links": {"processes", "state", "nvlink_links"},
            "opt-in: all (+pcie)": set(OPT_IN),
        }
    # an older tree (xid and gpm were opt-in there)
    return {
        "default": set(),
        "opt-in: processes,xid,gpm": {"processes", "xid", "gpm"},
        "opt-in: all (+pcie)": set(OPT_IN),
    }


def main(argv: list[str] | None = None) -> int:
    """Sample every configuration once per tick for ``--duration`` seconds and print a table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds per tick (default 1)")
    parser.add_argument("--gpus", type=int, default=8, help="fake GPUs (default 8)")
    parser.add_argument("--pcie-delay-ms", type=float, default=20.0, help="one PCIe call blocks")
    parser.add_argument("--code", default=str(ROOT), help="checkout to import snapcloud from")
    args = parser.parse_args(argv)
    cmd = " ".join(["python benchmarks/collector_cost.py", *(argv or sys.argv[1:])])

    fake = FakeNvml(load_library(build_library())).reset(args.gpus)
    fake.set(-1, "pcie_delay_us", args.pcie_delay_ms * 1e3)
    fake.install(pynvml)
    cpu = CpuCollector()
    gpus = {name: GpuCollector(pynvml, opt_in=groups) for name, groups in _configs().items()}
    probes = {"cpu": Probe("cpu", cpu.collect)} | {
        name: Probe(name, g.collect, fake) for name, g in gpus.items()
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
    fake.uninstall()

    ticks = len(probes["cpu"].wall_ms)
    print(f"command: {cmd}")
    print(f"code: {CODE} (snapcloud from {sys.modules['snapcloud'].__file__})")
    print(
        f"{ticks} ticks at {1 / args.interval:g} Hz over {seconds:.1f} s; GPU = real pynvml "
        f"(nvidia-ml-py {importlib.metadata.version('nvidia-ml-py')}) over the fake "
        f"{args.gpus}-GPU NVML C library "
        f"(not hardware); PCIe calls block {args.pcie_delay_ms:g} ms"
    )
    print()
    print(
        f"| {'collectors':<40} | samples | calls/GPU | mean ms  | p50 ms   | p99 ms   | CPU % 1 c |"
    )
    print(f"|{'-' * 42}|--------:|----------:|---------:|---------:|---------:|----------:|")
    print(_row("cpu (psutil, this host)", [probes["cpu"]], seconds, args.gpus))
    for name in gpus:
        print(_row(f"gpu {name}", [probes[name]], seconds, args.gpus))
    for name in gpus:
        print(_row(f"cpu + gpu {name}", [probes["cpu"], probes[name]], seconds, args.gpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
