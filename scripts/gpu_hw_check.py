"""The GPU collector on real hardware, in one short run (about 2 minutes; under 5).

Run on a GPU host, from the repository root (``bash scripts/gpu_hw_check.sh``):

1. environment: host, GPUs, driver, CUDA, nvidia-ml-py, nvidia-smi;
2. NVML calls per sample, counted at the C functions pynvml calls (a counting
   proxy in front of ``pynvml.nvmlLib``), default set and every opt-in group;
3. cost: ``--samples`` samples of the default set at 1 Hz, wall ms and CPU ms
   per sample, without the counting proxy;
4. fidelity: the collector (every opt-in group but ``pcie``) against
   ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` run right after
   each of ``--compare`` samples: per field ours, nvidia-smi's, the largest
   difference and a verdict;
5. ``snapcloud record`` for ``--record-s`` seconds into a local file store,
   then the stored snapshots read back: GPU series and labels present;
6. per-field ``latencyUsec`` (NVML's own), fields seen and not supported.

Everything is printed as markdown to paste into docs/GPU.md (and written to
``--out``). Without NVML (no driver, no library, no GPU) it prints why and
exits 2, having changed nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import io
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snapcloud.collectors import GpuCollector, Sample  # noqa: E402

# (nvidia-smi field, our field, factor: ours = smi * factor, tolerance, relative?)
SMI = (
    ("utilization.gpu", "util_pct", 1, 15, False),
    ("utilization.memory", "mem_util_pct", 1, 15, False),
    ("memory.total", "fb_total_bytes", 2**20, 2**20, False),
    ("memory.used", "fb_used_bytes", 2**20, 64 * 2**20, False),
    ("memory.free", "fb_free_bytes", 2**20, 64 * 2**20, False),
    ("memory.reserved", "fb_reserved_bytes", 2**20, 2**20, False),
    ("temperature.gpu", "temp_c", 1, 3, False),
    ("temperature.memory", "mem_temp_c", 1, 3, False),
    ("power.draw.average", "power_avg_mw", 1000, 0.2, True),
    ("power.draw.instant", "power_instant_mw", 1000, 0.3, True),
    ("power.draw", "power_avg_mw", 1000, 0.2, True),
    ("enforced.power.limit", "power_limit_mw", 1000, 1000, False),
    ("clocks.sm", "sm_clock_mhz", 1, 0.1, True),
    ("clocks.mem", "mem_clock_mhz", 1, 0.05, True),
    ("clocks.gr", "gfx_clock_mhz", 1, 0.1, True),
    ("utilization.encoder", "enc_util_pct", 1, 15, False),
    ("utilization.decoder", "dec_util_pct", 1, 15, False),
    ("ecc.errors.corrected.volatile.total", "ecc_corrected", 1, 0, False),
    ("ecc.errors.uncorrected.volatile.total", "ecc_uncorrected", 1, 0, False),
    ("retired_pages.single_bit_ecc.count", "retired_pages_sbe", 1, 0, False),
    ("retired_pages.double_bit.count", "retired_pages_dbe", 1, 0, False),
    ("remapped_rows.correctable", "remapped_rows_corr", 1, 0, False),
    ("remapped_rows.uncorrectable", "remapped_rows_unc", 1, 0, False),
    ("remapped_rows.pending", "remapped_rows_pending", 1, 0, False),
    ("remapped_rows.failure", "remapped_rows_failure", 1, 0, False),
    ("pstate", "pstate", 1, 0, False),
    ("fan.speed", "fan_pct", 1, 5, False),
    ("clocks_event_reasons.active", "clock_event_reasons", 1, 0, False),
    ("clocks_throttle_reasons.active", "clock_event_reasons", 1, 0, False),
)
SMI_IDENTITY = ("index", "uuid", "name", "pci.bus_id", "driver_version", "mig.mode.current")


# --- helpers ---------------------------------------------------------------------------


def sh(cmd: list[str], timeout: float = 30.0) -> str:
    """stdout of ``cmd`` ("" if it fails)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def smi_valid_fields() -> set[str]:
    """The --query-gpu fields this nvidia-smi knows."""
    return set(re.findall(r'^"([a-z0-9_.]+)"', sh(["nvidia-smi", "--help-query-gpu"]), re.M))


def smi_value(raw: str) -> float | None:
    """A number nvidia-smi printed (nounits): P-states and hex masks too; None for N/A."""
    raw = raw.strip()
    if not raw or raw.startswith("[") or raw in ("N/A", "Disabled", "Enabled"):
        return None
    if re.fullmatch(r"P\d+", raw):
        return float(raw[1:])
    if raw.lower().startswith("0x"):
        return float(int(raw, 16))
    if raw in ("No", "Yes"):
        return float(raw == "Yes")
    try:
        return float(raw)
    except ValueError:
        return None


def smi_query(fields: list[str]) -> dict[int, dict[str, str]]:
    """One nvidia-smi --query-gpu run: per GPU index, field -> raw text."""
    out = sh(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"])
    rows: dict[int, dict[str, str]] = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == len(fields):
            row = dict(zip(fields, parts, strict=True))
            rows[int(row["index"])] = row
    return rows


class _CountedFn:
    """A C function of the NVML library that counts its calls."""

    def __init__(self, fn: Any, name: str, calls: Counter[str]) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_calls", calls)

    def __call__(self, *args: Any) -> Any:
        self._calls[self._name] += 1
        return self._fn(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._fn, name, value)  # pynvml sets restype on some


class _CountingLib:
    """``pynvml.nvmlLib`` in front of the real library, counting C calls per function."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return _CountedFn(getattr(self.lib, name), name, self.calls)


@contextlib.contextmanager
def counting(pynvml: Any) -> Iterator[Counter[str]]:
    """Count every NVML C call made through ``pynvml`` inside the block."""
    pynvml._LoadNvmlLibrary()
    proxy = _CountingLib(pynvml.nvmlLib)
    real = pynvml.nvmlLib
    pynvml.nvmlLib = proxy
    pynvml._nvmlGetFunctionPointer_cache.clear()
    try:
        yield proxy.calls
    finally:
        pynvml.nvmlLib = real
        pynvml._nvmlGetFunctionPointer_cache.clear()


def by_name(samples: list[Sample]) -> dict[str, float]:
    return {s.name: s.value for s in samples if not s.event}


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


# --- phases ----------------------------------------------------------------------------


def environment(gpu: GpuCollector, pynvml: Any) -> list[str]:
    labels = gpu.labels()
    models = Counter(v for k, v in labels.items() if re.fullmatch(r"gpu\.\d+\.name", k))
    try:
        nvml_py = importlib.metadata.version("nvidia-ml-py")
    except importlib.metadata.PackageNotFoundError:
        nvml_py = "?"
    smi = sh(["nvidia-smi", "--version"]).strip().replace("\n", "; ") or "not found"
    migs = sorted(k[: -len(".mig_mode")] for k in labels if k.endswith(".mig_mode"))
    return [
        f"- host: {socket.gethostname()}, {platform.platform()}, "
        f"Python {platform.python_version()}",
        f"- GPUs: {labels.get('gpu.count')} x "
        + ", ".join(f"{n} ({c})" for n, c in models.items())
        + f"; architectures {sorted({v for k, v in labels.items() if k.endswith('.arch')})}",
        f"- driver {labels.get('driver_version')}, CUDA {labels.get('cuda_version')}, "
        f"nvidia-ml-py {nvml_py}",
        f"- nvidia-smi: {smi}",
        f"- MIG enabled on: {', '.join(migs) or 'none'}",
    ]


def call_counts(
    pynvml: Any, groups: set[str], clock_gap: float = 0.15
) -> tuple[float, Counter[str]]:
    """NVML C calls per GPU per steady sample with ``groups`` opted in."""
    with counting(pynvml) as calls:
        gpu = GpuCollector(pynvml, opt_in=groups)
        try:
            for _ in range(3):  # learn, prime GPM
                gpu.collect()
                time.sleep(clock_gap)
            calls.clear()
            n = 5
            for _ in range(n):
                gpu.collect()
                time.sleep(clock_gap)
            per_sample = Counter({k: v / n for k, v in calls.items()})
            count = max(gpu.device_count, 1)
        finally:
            gpu.close()
    return sum(per_sample.values()) / count, per_sample


def cost(pynvml: Any, samples: int, interval: float) -> tuple[list[str], GpuCollector]:
    gpu = GpuCollector(pynvml)
    wall: list[float] = []
    cpu: list[float] = []
    for i in range(samples):
        t0, c0 = time.perf_counter(), time.thread_time()
        gpu.collect()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
        if i + 1 < samples:
            time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    steady_w, steady_c = wall[1:] or wall, cpu[1:] or cpu
    p99 = statistics.quantiles(steady_w, n=100)[98] if len(steady_w) > 1 else steady_w[0]
    lines = [
        f"default set, {samples} samples every {interval:g} s, {gpu.device_count} GPUs, "
        f"no call counting:",
        "",
        *table(
            [
                "first ms",
                "mean ms",
                "p50 ms",
                "p99 ms",
                "max ms",
                "CPU ms/sample",
                "CPU % of a core",
            ],
            [
                [
                    f"{wall[0]:.2f}",
                    f"{statistics.fmean(steady_w):.2f}",
                    f"{statistics.median(steady_w):.2f}",
                    f"{p99:.2f}",
                    f"{max(steady_w):.2f}",
                    f"{statistics.fmean(steady_c):.2f}",
                    f"{100 * statistics.fmean(steady_c) / 1e3 / interval:.3f}",
                ]
            ],
        ),
    ]
    return lines, gpu


def compare(pynvml: Any, samples: int, interval: float) -> list[str]:
    """Our fields against nvidia-smi's, read right after each collect."""
    if shutil.which("nvidia-smi") is None:
        return ["nvidia-smi not found: no comparison"]
    valid = smi_valid_fields()
    wanted = [f for f in SMI_IDENTITY if f in valid]
    pairs = [p for p in SMI if p[0] in valid]
    fields = wanted + [p[0] for p in pairs]
    gpu = GpuCollector(pynvml, opt_in={"state", "processes", "nvlink_links"})
    worst: dict[tuple[str, str], float] = {}
    seen: dict[tuple[str, str], tuple[float, float]] = {}
    missing: Counter[tuple[str, str]] = Counter()
    try:
        for _ in range(samples):
            t0 = time.perf_counter()
            ours = by_name(gpu.collect())
            smi = smi_query(fields)
            for index, row in smi.items():
                for smi_field, suffix, factor, _, _ in pairs:
                    theirs = smi_value(row.get(smi_field, ""))
                    mine = ours.get(f"gpu.{index}.{suffix}")
                    if theirs is None or mine is None:
                        missing[(smi_field, "ours" if mine is None else "smi")] += theirs != mine
                        continue
                    delta = abs(mine - theirs * factor)
                    key = (smi_field, suffix)
                    if delta >= worst.get(key, -1):
                        worst[key], seen[key] = delta, (mine, theirs * factor)
            time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    finally:
        gpu.close()
    rows = []
    for smi_field, suffix, _, tol, relative in pairs:
        key = (smi_field, suffix)
        if key not in worst:
            why = "ours missing" if missing[(smi_field, "ours")] else "nvidia-smi N/A"
            rows.append([f"`{suffix}`", f"`{smi_field}`", "", "", "", why])
            continue
        mine, theirs = seen[key]
        limit = tol * abs(theirs) if relative else tol
        verdict = "ok" if worst[key] <= limit else "**DIFF**"
        rows.append(
            [
                f"`{suffix}`",
                f"`{smi_field}`",
                f"{mine:g}",
                f"{theirs:g}",
                f"{worst[key]:g}",
                verdict,
            ]
        )
    head = [
        f"{samples} samples, nvidia-smi run right after each collect (worst GPU and sample):",
        "",
    ]
    return head + table(["field", "nvidia-smi", "ours", "smi", "max |diff|", "verdict"], rows)


def record(seconds: float) -> list[str]:
    """``snapcloud record`` into a file store, then the snapshots read back."""
    from snapcloud.store import Repository

    with tempfile.TemporaryDirectory(prefix="gpu-hw-check-") as tmp:
        store = f"file://{tmp}/store"
        host = "gpu-hw-check"
        window = max(5.0, seconds / 2)
        cmd = [
            sys.executable, "-m", "snapcloud", "record", "--host", host, "--store", store,
            "--interval", "1", "--window", f"{window:g}", "--duration", f"{seconds:g}",
            "--fingerprint", "gpu-hw-check", "--spool-dir", f"{tmp}/spool",
        ]  # fmt: skip
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        took = time.monotonic() - t0
        lines = [f"`{' '.join(cmd[1:])}` (store and spool in a temp dir): exit {proc.returncode}, "
                 f"{took:.0f} s"]  # fmt: skip
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return [*lines, "", "```", *tail, "```"]
        stream = Repository.open(store).stream(host)
        snaps = [stream.get(e.seq) for e in stream.entries()]
        names = sorted({n for s in snaps for n in s.metric_names if n.startswith("gpu.")})
        labels = snaps[-1].labels if snaps else {}
        gpu_labels = sorted(k for k in labels if k.startswith(("gpu.", "driver", "cuda")))
        per_gpu = Counter(n.split(".")[1] for n in names)
        lines += [
            f"- {len(snaps)} snapshots stored; {len(names)} GPU series "
            f"({', '.join(f'gpu.{k}: {v}' for k, v in sorted(per_gpu.items()))})",
            f"- labels of the last snapshot: {len(gpu_labels)} GPU labels, e.g. "
            + ", ".join(f"`{k}={labels[k]}`" for k in gpu_labels[:6]),
            f"- summary line: {(proc.stderr.strip().splitlines() or [''])[-1]}",
        ]
        return lines


def details(gpu: GpuCollector) -> list[str]:
    lines = [
        "per-field `latencyUsec` NVML reported (mean / max, us, over every GPU and sample):",
        "",
    ]
    lat = gpu.field_latency_us()
    lines += table(["field", "mean us", "max us", "n"], [
        [f"`{k}`", f"{mean:.0f}", str(peak), str(n)] for k, (mean, peak, n) in lat.items()
    ])  # fmt: skip
    lines += ["", "readings each GPU answers, and what NVML said it cannot:", ""]
    for prefix, keys in gpu.fields_seen().items():
        lines.append(f"- `{prefix}`: {' '.join(keys)}")
    for prefix, parts in gpu.unsupported().items():
        lines.append(f"- `{prefix}` not supported: {' '.join(parts)}")
    return lines


# --- main ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    try:
        import pynvml
    except ImportError:
        emit("no GPU check: pynvml (nvidia-ml-py) is not installed")
        return 2
    probe = GpuCollector(pynvml)
    if not probe.available:
        emit(f"no GPU check: {probe.reason}")
        return 2
    started = time.monotonic()
    emit(f"### {dt.date.today()} {socket.gethostname()}: scripts/gpu_hw_check.sh")
    emit("")
    for line in environment(probe, pynvml):
        emit(line)
    probe.close()
    emit("")
    emit("NVML calls per GPU per steady sample (counted at the C functions; host calls / GPUs):")
    emit("")
    rows = []
    for label, groups in (
        ("default", set()),
        ("+ state", {"state"}),
        ("+ processes", {"processes"}),
        ("+ nvlink_links", {"nvlink_links"}),
        ("+ pcie", {"pcie"}),
    ):
        per_gpu, calls = call_counts(pynvml, groups)
        top = ", ".join(f"{k} {v:g}" for k, v in calls.most_common())
        rows.append([label, f"{per_gpu:.2f}", top])
    for line in table(["set", "calls/GPU", "C calls per sample"], rows):
        emit(line)
    emit("")
    lines, gpu = cost(pynvml, args.samples, args.interval)
    for line in lines:
        emit(line)
    emit("")
    for line in details(gpu):
        emit(line)
    gpu.close()
    emit("")
    for line in compare(pynvml, args.compare, args.interval):
        emit(line)
    emit("")
    if args.record_s > 0:
        for line in record(args.record_s):
            emit(line)
    emit("")
    emit(f"(check took {time.monotonic() - started:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run every phase; print markdown (and write it to ``--out`` when the check ran)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=30, help="cost samples (default 30)")
    parser.add_argument("--compare", type=int, default=15, help="samples compared (default 15)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--record-s", type=float, default=40.0, help="snapcloud record seconds")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    buf = io.StringIO()

    def emit(line: str) -> None:
        print(line, flush=True)
        buf.write(line + "\n")

    status = run(args, emit)
    if args.out is not None and status == 0:
        args.out.write_text(buf.getvalue(), encoding="utf-8")
    return status


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
