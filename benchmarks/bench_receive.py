"""Remote-write ingest: ``snapcloud serve --receive`` fed a dcgm-exporter fleet's stream.

The stream is what a Prometheus scraping dcgm-exporter on ``--hosts`` nodes (8 GPUs,
62 fields each: 496 series a node) every 15 s sends: ``prometheus.WriteRequest``s of
at most 2,000 samples (Prometheus's ``max_samples_per_send``), one sample per series
per scrape, every series with dcgm-exporter's labels and the target's ``job`` and
``instance``; snappy block format. ``--minutes`` of it are built first (not timed).

1. End to end: a real ``snapcloud serve --receive`` process on a file store, the
   requests POSTed over loopback HTTP by ``--clients`` threads (Prometheus's shards)
   as fast as it answers; at SIGTERM its last pass uploads the spool (checked empty).
   Reported: samples/s acknowledged (204), and the server process's CPU (user + system,
   psutil) per sample acknowledged.
2. In process, the two halves apart: ``Receiver.write`` (decode, map, spool with fsync)
   and one ``Receiver.upload`` pass (merge, window, append to the store): CPU per sample.

    .venv/bin/python benchmarks/bench_receive.py --hosts 10 --minutes 30
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cramjam
import numpy as np
import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapcloud.backends import open_store
from snapcloud.serve import ReceiveConfig, Receiver
from snapcloud.serve._prompb import remote_pb2, types_pb2
from snapcloud.store import Repository
from tests.serve.process import wait_ready

ROOT = Path(__file__).resolve().parents[1]
T0_MS = 1_767_225_600_000
FIELDS = [
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_ENC_UTIL",
    "DCGM_FI_DEV_DEC_UTIL",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
] + [f"DCGM_FI_PROF_EXTRA_{i}" for i in range(47)]  # 62 fields
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def build_stream(hosts: int, minutes: int, per_request: int = 2000) -> tuple[list[bytes], int]:
    """The requests (snappy bodies) and how many samples they hold."""
    rng = np.random.default_rng(18)
    series = []
    for h in range(hosts):
        for g in range(8):
            for f in FIELDS:
                series.append(
                    {
                        "__name__": f,
                        "job": "dcgm-exporter",
                        "instance": f"gpu-node-{h:03d}:9400",
                        "gpu": str(g),
                        "UUID": f"GPU-{h:03d}{g:02d}-8f2c-4d1a-9e55-000000000000",
                        "device": f"nvidia{g}",
                        "modelName": "NVIDIA H100 80GB HBM3",
                        "Hostname": f"gpu-node-{h:03d}",
                        "DCGM_FI_DRIVER_VERSION": "550.54.15",
                        "pci_bus_id": f"00000000:{g + 0x18:02X}:00.0",
                    }
                )
    labels = [[types_pb2.Label(name=k, value=s[k]) for k in sorted(s)] for s in series]
    bodies = []
    total = 0
    for scrape in range(minutes * 4):
        t = T0_MS + scrape * 15_000
        values = rng.uniform(0, 1000, len(series)).round(3)
        for lo in range(0, len(series), per_request):
            req = remote_pb2.WriteRequest()
            for i in range(lo, min(lo + per_request, len(series))):
                ts = req.timeseries.add()
                ts.labels.extend(labels[i])
                ts.samples.append(types_pb2.Sample(value=float(values[i]), timestamp=t))
                total += 1
            bodies.append(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
    return bodies, total


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def end_to_end(bodies: list[bytes], total: int, clients: int, work: Path) -> dict[str, float]:
    store = work / "store-e2e"
    spool = work / "spool-e2e"
    port = _free_port()
    cmd = [sys.executable, "-m", "snapcloud", "--store", f"file://{store}", "serve"]
    cmd += ["--listen", f"127.0.0.1:{port}", "--receive", "--receive-spool", str(spool)]
    cmd += ["--receive-flush", "3600"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        ps = psutil.Process(proc.pid)
        cpu0 = _cpu(ps)
        nxt = iter(range(len(bodies)))
        lock = threading.Lock()
        failures = []

        def client() -> None:
            with requests.Session() as s:
                while True:
                    with lock:
                        i = next(nxt, None)
                    if i is None:
                        return
                    r = s.post(f"{url}/api/v1/write", data=bodies[i], headers=HEADERS)
                    if r.status_code != 204:
                        failures.append(r.text)

        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        cpu_ack = _cpu(ps) - cpu0
        if failures:
            raise RuntimeError(f"{len(failures)} requests failed: {failures[0]}")
    finally:
        proc.terminate()  # SIGTERM: the last upload pass runs, then it exits
        _, err = proc.communicate(timeout=600)
    left = [p for p in spool.rglob("*.snap") if "quarantine" not in p.parts]
    if left:
        raise RuntimeError(f"{len(left)} spool files left: {err.decode()[-2000:]}")
    return {"wall_s": wall, "samples_per_s": total / wall, "cpu_us_ack": cpu_ack / total * 1e6}


def in_process(bodies: list[bytes], total: int, work: Path) -> dict[str, float]:
    repo = Repository(open_store(f"file://{work / 'store-inproc'}", create=True))
    rx = Receiver(repo, ReceiveConfig(spool_dir=work / "spool-inproc", flush_s=3600.0))
    c0 = time.process_time()
    w0 = time.perf_counter()
    for body in bodies:
        rx.write(body, {k.lower(): v for k, v in HEADERS.items()})
    write_cpu = time.process_time() - c0
    write_wall = time.perf_counter() - w0
    c1 = time.process_time()
    w1 = time.perf_counter()
    stored = rx.upload()
    upload_cpu = time.process_time() - c1
    upload_wall = time.perf_counter() - w1
    rx.close()
    if stored != total:
        raise RuntimeError(f"stored {stored} of {total} samples")
    return {
        "write_us": write_cpu / total * 1e6,
        "write_wall_samples_per_s": total / write_wall,
        "upload_us": upload_cpu / total * 1e6,
        "upload_wall_s": upload_wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    bodies, total = build_stream(args.hosts, args.minutes)
    size = sum(len(b) for b in bodies)
    print(
        f"stream: {args.hosts} hosts x 8 GPUs x {len(FIELDS)} fields, 15 s scrapes, "
        f"{args.minutes} min: {len(bodies)} requests, {total:,} samples, "
        f"{size / len(bodies) / 1024:.1f} KiB/request (snappy)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        e2e = end_to_end(bodies, total, args.clients, Path(tmp))
        print(
            f"end to end ({args.clients} clients, HTTP, real process): "
            f"{e2e['samples_per_s']:,.0f} samples/s acknowledged ({e2e['wall_s']:.1f} s), "
            f"server CPU {e2e['cpu_us_ack']:.2f} us/sample for the 204s"
        )
        ip = in_process(bodies, total, Path(tmp))
        print(
            f"in process: write (decode, map, spool + fsync) {ip['write_us']:.2f} us CPU/sample "
            f"({ip['write_wall_samples_per_s']:,.0f} samples/s); upload pass (merge, window, "
            f"append) {ip['upload_us']:.2f} us CPU/sample ({ip['upload_wall_s']:.1f} s)"
        )
        rate = args.hosts * 8 * len(FIELDS) / 15
        share = rate * (ip["write_us"] + ip["upload_us"]) / 1e6
        print(f"at this fleet's rate ({rate:,.0f} samples/s): {share * 100:.2f}% of a core")


if __name__ == "__main__":
    main()
