"""What importing a small new file costs as a host's stream grows: 100 vs 10,000 windows (moto).

Run:  .venv/bin/python benchmarks/bench_import.py [--small 100] [--large 10000] [--runs 5]

Two hosts hold ``--small`` and ``--large`` one-minute windows of a 3-metric series (a
sample every 10 s), written in memory with the default config (keyframe groups of 60).
The compactor runs (at the default ages the 10,000-window host's first six days go to
the compressed tier; the last day's sealed raw groups get range hints) and runs again
past the deletion delay (the compressed groups' raw objects, segments and marks
deleted), and everything is copied to a moto server (a subprocess, over HTTP). Then,
``--runs`` times and alternating between the hosts, a new 10-minute CSV file (60 rows,
3 metrics) that follows the host's last window is imported the way ``snapcloud
import`` does it (``import_files`` then ``append_windows``, over S3Store). Reported per
host: the median latency, the requests, the index segments read, and the time spent
waiting on each kind of request. The baseline (100 windows) is measured in the same
run, alternating with the 10,000.

For comparison, the same two hosts are also measured the way the import read the index
before (every index segment: ``list(stream.entries())``) and, once, an import into the
large host with its range hints deleted (a host the compactor never ran on: then every
segment is read; the hints are put back after).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from bench_query import BUCKET, MIN, T0, _start_moto, _store, copy_objects

from snapcloud.backends import MemoryStore
from snapcloud.importers import append_windows, cut_windows, import_files
from snapcloud.models import MetricSeries, SnapshotConfig
from snapcloud.retention import Compactor
from snapcloud.store import HostStream, Repository

S = 10**9
NAMES = ("cpu.util", "mem.used_bytes", "net.rx_bytes_total")


def _build(memory: MemoryStore, host: str, windows: int, config: SnapshotConfig) -> int:
    """``windows`` windows for ``host``; returns where they end (ns)."""
    n = windows * 6
    ts = T0 + np.arange(n, dtype=np.int64) * 10 * S
    rng = np.random.default_rng(windows)
    series = [
        MetricSeries(NAMES[0], ts, np.round(rng.uniform(0, 100, n), 1), unit="%"),
        MetricSeries(NAMES[1], ts, np.round(rng.uniform(1e9, 2e9, n)), unit="bytes"),
        MetricSeries(NAMES[2], ts, np.cumsum(rng.integers(0, 10**6, n)).astype(float)),
    ]
    stream = HostStream(memory, host, config)
    for snap in cut_windows(host, series, window_ns=MIN):
        stream.append(snap)
    return T0 + windows * MIN


def _csv(path: Path, start_ns: int) -> None:
    rows = ["timestamp,cpu.util,mem.used_bytes,net.rx_bytes_total"]
    for i in range(60):
        t = start_ns + i * 10 * S
        rows.append(f"{t // S}.{t % S:09d},{i % 100}.5,{1.5e9 + i},{1e12 + i * 1000}")
    path.write_text("\n".join(rows) + "\n")


class _SegmentReads:
    """Counts GETs of index segments (``index/`` keys) through a store, and the seconds
    each kind of request takes (to tell the server's share from the client's)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.description = inner.description
        self.reads = 0
        self.seconds: dict[str, float] = {}

    def _timed(self, op: str, call: Any, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return call(*a, **kw)
        finally:
            self.seconds[op] = self.seconds.get(op, 0.0) + time.perf_counter() - t

    def get(self, key: str, **kw: Any) -> Any:
        if key.startswith("index/"):
            self.reads += 1
        return self._timed("get", self.inner.get, key, **kw)

    def put(self, key: str, data: bytes, **kw: Any) -> Any:
        return self._timed("put", self.inner.put, key, data, **kw)

    def list(self, prefix: str) -> Any:
        return self._timed("list", lambda: list(self.inner.list(prefix)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _import(objects: Any, host: str, path: Path, config: SnapshotConfig) -> dict[str, float]:
    counted = _SegmentReads(objects)
    repo = Repository(counted, config)  # type: ignore[arg-type]
    t = time.perf_counter()
    snaps = import_files(host, [path], window_ns=MIN)
    done = append_windows(repo.stream(host, create=True), snaps)
    seconds = time.perf_counter() - t
    assert len(done.appended) == 10 and done.samples_already_stored == 0
    waits = {f"{op}_s": v for op, v in counted.seconds.items()}
    return {"seconds": seconds, "segments": counted.reads, **repo.requests(), **waits}


def _requests(row: dict[str, float]) -> float:
    return sum(v for k, v in row.items() if k in ("get", "put", "list", "head", "delete"))


def _old_read(objects: Any, host: str, config: SnapshotConfig) -> dict[str, float]:
    """What the import read before: every index entry (every segment of the host)."""
    counted = _SegmentReads(objects)
    repo = Repository(counted, config)  # type: ignore[arg-type]
    t = time.perf_counter()
    n = len(list(repo.stream(host).entries()))
    return {"seconds": time.perf_counter() - t, "segments": counted.reads, "entries": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    config = SnapshotConfig()
    memory = MemoryStore()
    sizes = {"small-host": args.small, "large-host": args.large}
    t = time.perf_counter()
    ends = {h: _build(memory, h, w, config) for h, w in sizes.items()}
    built = time.perf_counter() - t
    report = Compactor(memory, config).run(max(ends.values()) + MIN)
    hints = {h.host: h.range_hints_written for h in report.hosts}
    # and once more past the deletion delay, as a running compactor leaves a host: the raw
    # objects, segments and marks of the compressed groups deleted
    Compactor(memory, config).run(max(ends.values()) + MIN + config.delete_delay_ns + MIN)
    keys = {h: sum(1 for _ in memory.list(f"index/{h}/")) for h in sizes}
    server, endpoint = _start_moto()
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        objects = _store(endpoint, 16, prefix="imports")
        copied, copy_s = copy_objects(memory, objects, 16)
        results: dict[str, list[dict[str, float]]] = {h: [] for h in sizes}
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                for host in sizes:
                    path = Path(tmp) / f"{host}-{run}.csv"
                    _csv(path, ends[host])
                    results[host].append(_import(objects, host, path, config))
                    ends[host] += 10 * MIN
            old = {h: _old_read(objects, h, config) for h in sizes}
            hint_keys = [
                i.key for i in objects.list("index/large-host/") if i.key.endswith(".range")
            ]
            for key in hint_keys:
                objects.delete(key)
            path = Path(tmp) / "no-hints.csv"
            _csv(path, ends["large-host"])
            unhinted = _import(objects, "large-host", path, config)
            for key in hint_keys:
                objects.put(key, b"")
    finally:
        server.terminate()
        server.wait()

    print("command: .venv/bin/python benchmarks/bench_import.py " + " ".join(sys.argv[1:]))
    print(
        f"built in memory in {built:.1f} s; compactor wrote {hints} range hints (then ran "
        f"again past the deletion delay; keys under index/<host>/: {keys}); "
        f"{copied} objects copied to moto in {copy_s:.1f} s; {args.runs} imports per host, "
        "alternating"
    )
    print()
    print(
        "| host | stored windows | median s (runs) | index segments read | GET | PUT | LIST "
        "| median s waiting on GET / PUT / LIST |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    med = {}
    for host, rows in results.items():
        secs = [r["seconds"] for r in rows]
        med[host] = statistics.median(secs)
        last = rows[-1]
        waits = " / ".join(
            f"{statistics.median(r.get(op + '_s', 0.0) for r in rows):.3f}"
            for op in ("get", "put", "list")
        )
        print(
            f"| {host} | {sizes[host]} | {med[host]:.3f} ({', '.join(f'{s:.3f}' for s in secs)})"
            f" | {last['segments']:.0f} | {last.get('get', 0):.0f} | {last.get('put', 0):.0f} "
            f"| {last.get('list', 0):.0f} | {waits} |"
        )
    print()
    print(
        f"large / small median latency: **{med['large-host'] / med['small-host']:.2f}x**; "
        "requests per import (last run): "
        + "; ".join(f"{h} {_requests(rows[-1]):.0f}" for h, rows in results.items())
    )
    print()
    print("| the index as the import read it before (every segment) | segments read | s |")
    print("|---|---:|---:|")
    for host, r in old.items():
        print(f"| {host} ({r['entries']:.0f} entries) | {r['segments']:.0f} | {r['seconds']:.3f} |")
    print()
    print(
        f"large host with its {len(hint_keys)} range hints deleted (never compacted): "
        f"{unhinted['seconds']:.3f} s, {unhinted['segments']:.0f} segments read, "
        f"GET {unhinted.get('get', 0):.0f}"
    )


if __name__ == "__main__":
    main()
