"""Fleet query benchmark on a moto S3 server (a subprocess, over HTTP).

Run:  .venv/bin/python benchmarks/bench_query.py [--hosts 100] [--windows 60] [--workers 16]

Stores a synthetic fleet (``snapcloud.synth``: 8-GPU hosts, 113 metrics at 1 Hz,
one-minute snapshots) written by several threads, refreshes its catalog, then measures
in one run:

1. a selective query (one metric glob, ``gpu.*.power_avg_mw``, over the last 10 minutes of
   every host, mean per host) through ``snapcloud.query``;
2. the same answer from a naive client that lists every object under ``raw/`` and
   reads and decodes every one, sequentially (and again with a 16-thread pool, to
   separate what selectivity buys from what parallel reads buy), with the CPU time the
   moto process spends on each: the floor its one process puts under the query;
3. a full scan (every metric of every host, mean/min/max/count per host and metric),
   in million samples decoded per second, end to end (index reads, object reads,
   decoding, aggregation), over the fresh raw objects (one per snapshot);
4. unless ``--no-compacted``: the same full scan over *compacted history*, as the
   compactor leaves it (``snapcloud.retention.Compactor``, raw -> compressed only:
   one compressed-tier object per keyframe group, raw objects deleted after the
   deletion delay), copied to moto under a second prefix. A fleet-wide scan of
   anything older than ``raw_max_age`` reads that tier, not raw objects. Its answer
   must equal the raw scan's (the compactor is lossless); the compaction's own
   throughput is timed too.

Requests are compared with the fewest the layout allows: the catalog and index segment
reads plus one read per needed object (keyframes needed as delta bases included).
Prints markdown tables and the command line.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapcloud import codec
from snapcloud.backends import CountingStore, MemoryStore, S3Store
from snapcloud.index import parse_data_key
from snapcloud.models import SnapshotConfig
from snapcloud.query import QueryResult, QueryStats, Selector, plan_query, run_query
from snapcloud.retention import DAY_NS, Compactor, RetentionPolicy, storage_by_tier
from snapcloud.store import HostStream, Repository
from snapcloud.synth import host_snapshots

T0 = 1_767_225_600 * 10**9  # the synth default start
MIN = 60 * 10**9
BUCKET = "bench-query"
TARGET = 10e6  # the target: full-scan samples decoded per second, end to end
FULL_AGGS = ("mean", "min", "max", "count")  # the full scans' aggregations


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """A moto server on a free loopback port, and its endpoint. Sets fake credentials in
    this process's environment (moto accepts any; boto3 refuses to sign without)."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, f"http://127.0.0.1:{port}"


def _store(endpoint: str, pool: int, prefix: str = "fleet") -> S3Store:
    import boto3
    from botocore.config import Config

    # S3Store's own client keeps botocore's default pool of 10 connections; a query
    # runs 16 reads at once, so give the benchmark's client a pool that fits them.
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(max_pool_connections=pool, retries={"total_max_attempts": 5}),
    )
    return S3Store(BUCKET, prefix, endpoint_url=endpoint, client=client)


class _Latency:
    """An ``ObjectStore`` wrapper that sleeps ``seconds`` before each request: a model of
    a network round trip (the sleep releases the GIL, as waiting on a socket does)."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self.description = inner.description

    def get(self, key: str, **kw: Any) -> Any:
        time.sleep(self.seconds)
        return self.inner.get(key, **kw)

    def list(self, prefix: str) -> Any:
        time.sleep(self.seconds)
        return self.inner.list(prefix)

    def list_dirs(self, prefix: str) -> Any:
        time.sleep(self.seconds)
        return self.inner.list_dirs(prefix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def load_fleet(
    memory: MemoryStore, objects: S3Store, hosts: int, windows: int, threads: int
) -> dict[str, Any]:
    """Append every host's windows into ``memory``, catalogue them, then copy every object
    to S3 with parallel puts (half the requests of appending over HTTP, same bytes)."""
    config = SnapshotConfig()
    t = time.perf_counter()
    samples = 0
    for h in range(hosts):
        snaps = host_snapshots(h, windows)
        stream = HostStream(memory, snaps[0].host, config)
        for s in snaps:
            stream.append(s)
        samples += sum(s.sample_count for s in snaps)
    repo = Repository(memory, config)
    for host in repo.hosts():
        repo.refresh_catalog(host)
    encode_s = time.perf_counter() - t
    count, copy_s = copy_objects(memory, objects, threads)
    return {"samples": samples, "encode_s": encode_s, "copy_s": copy_s, "objects": count}


def copy_objects(source: MemoryStore, objects: Any, threads: int) -> tuple[int, float]:
    """Copy every object of ``source`` to ``objects`` with parallel puts (a store is built
    in memory, then copied: half the requests of writing it over HTTP, same bytes).
    Returns (objects copied, seconds)."""
    keys = [info.key for info in source.list("")]
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: objects.put(k, source.get(k).data), keys))
    return len(keys), time.perf_counter() - t


def compact_history(
    memory: MemoryStore, hosts: int, windows: int, history_samples: int
) -> tuple[MemoryStore, dict[str, Any]]:
    """A copy of the fleet as the compactor leaves it once its windows are history.

    The compactor rewrites only *sealed* keyframe groups: a host's latest group stays
    raw, since its writer may still append to it. With the default 60 windows each
    host has exactly one group, its latest, so the fleet as written would not be
    compacted at all. History is always followed by newer data, so each host gets
    the windows that close its last group plus the one that opens the next
    (``host_snapshots(h, pad, start_ns=end)``: one window when ``windows`` is a
    multiple of the keyframe interval). Scans of the copy stop at the fleet's end,
    so they select exactly the samples the raw scan selects.

    Then, as ``bench_retention.py`` does: an only-compress policy (archive ages pushed
    out), one run as of the sealed groups' end + ``raw_max_age`` (timed: the
    compaction throughput, one core, in memory), a second after the deletion delay
    so the raw objects' marks fall due and they are deleted. Catalogs are refreshed
    as after loading. ``memory`` itself is left as it is.
    """
    config = SnapshotConfig()
    history = MemoryStore()
    copy_objects(memory, history, 1)
    interval = config.keyframe_interval
    sealed = -(-windows // interval) * interval  # windows in the groups the padding seals
    pad = sealed - windows + 1
    padding_compacted = 0  # padding samples inside the sealed groups (0 when pad == 1)
    for h in range(hosts):
        snaps = host_snapshots(h, pad, start_ns=T0 + windows * MIN)
        stream = HostStream(history, snaps[0].host, config)
        for s in snaps:
            stream.append(s)
        padding_compacted += sum(s.sample_count for s in snaps[:-1])
    before = storage_by_tier(history)
    policy = RetentionPolicy.from_config(
        config,
        compressed_max_age_ns=10_000 * DAY_NS,
        archive_max_age_ns=10_000 * DAY_NS,
    )
    compactor = Compactor(history, config, policy)
    now = T0 + sealed * MIN + config.raw_max_age_ns
    report = compactor.run(now)
    purge = compactor.run(now + config.delete_delay_ns)
    problems = [p for r in (report, purge) for h in r.hosts for p in h.problems]
    expected = history_samples + padding_compacted
    if problems or report.samples_compacted != expected:
        raise RuntimeError(
            f"compaction left history uncompacted: {report.samples_compacted} samples "
            f"compacted, {expected} expected; problems: {problems[:5]}"
        )
    repo = Repository(history, config)
    for host in repo.hosts():
        repo.refresh_catalog(host)
    after = storage_by_tier(history)

    def tier_sum(rows: list[Any], tier: str) -> tuple[int, int]:
        picked = [r for r in rows if r.tier == tier]
        return sum(r.objects for r in picked), sum(r.bytes for r in picked)

    return history, {
        "samples": report.samples_compacted,
        "seconds": report.seconds,
        "requests": report.requests,
        "purge_deletes": purge.requests.get("delete", 0),
        "pad": pad,
        "raw_before": tier_sum(before, "raw"),
        "raw_after": tier_sum(after, "raw"),
        "compressed_after": tier_sum(after, "compressed"),
    }


def tiers_read(repo: Repository, sel: Selector, workers: int) -> dict[str, int]:
    """Data objects a query of ``sel`` reads, per tier, from its plan (index reads only):
    the tables say which tier each scan read from what it read, not from assumption."""
    out: dict[str, int] = {}
    for host in plan_query(repo, sel, workers=workers).hosts:
        for unit in host.units():
            n = len(unit.entries) if unit.tier == "raw" else 1
            out[unit.tier] = out.get(unit.tier, 0) + n
    return out


def check_same(got: QueryResult, want: QueryResult, what: str) -> None:
    """Raise, naming the first differing row, unless ``got`` has exactly ``want``'s rows
    (compaction is lossless: a scan of compacted history must give the same answer)."""
    if got.columns == want.columns and got.rows == want.rows:
        return
    first = next(
        (i for i, (a, b) in enumerate(zip(got.rows, want.rows, strict=False)) if a != b),
        min(len(got.rows), len(want.rows)),
    )
    raise AssertionError(
        f"{what}: answer differs from the raw full scan's ({len(got.rows)} vs "
        f"{len(want.rows)} rows, columns {got.columns} vs {want.columns}); first difference "
        f"at row {first}: {got.rows[first : first + 1]} vs {want.rows[first : first + 1]}"
    )


def naive(
    objects: S3Store, pattern: str, start: int, end: int, workers: int = 1
) -> tuple[dict[str, float], dict[str, Any]]:
    """List every data object, read and decode every one; mean of the matching samples."""
    counting = CountingStore(objects)
    t = time.perf_counter()
    keys = sorted(
        (parsed.host, parsed.seq, info.key)
        for info in counting.list("raw/")
        if (parsed := parse_data_key(info.key)) is not None
    )
    if workers == 1:
        blobs = [counting.get(k).data for _, _, k in keys]
    else:
        with ThreadPoolExecutor(workers) as pool:
            blobs = list(pool.map(lambda k: counting.get(k[2]).data, keys))
    sums: dict[str, list[float]] = {}
    base = None
    for (host, _, _), data in zip(keys, blobs, strict=True):
        header = codec.read_header(data)
        snap = codec.decode(data, base=base if header.is_delta else None)
        if not header.is_delta:
            base = snap
        acc = sums.setdefault(host, [0.0, 0.0])
        for m in snap.metrics:
            if fnmatch.fnmatchcase(m.name, pattern):
                v = m.slice_time(start, end).values
                v = v[~np.isnan(v)]
                acc[0] += float(v.sum())
                acc[1] += v.size
    seconds = time.perf_counter() - t
    means = {h: s / n for h, (s, n) in sums.items() if n}
    return means, {
        "seconds": seconds,
        "requests": sum(counting.counts().values()),
        "objects": len(keys),
        "bytes": counting.bytes_moved()["bytes_read"],
    }


def _median_run(repo: Repository, sel: Selector, runs: int, **kw: Any) -> Any:
    results = [run_query(repo, sel, **kw) for _ in range(runs)]
    seconds = [r.stats.seconds for r in results]
    best = results[seconds.index(statistics.median_low(seconds))]
    return best


class _Cpu:
    """CPU seconds (user + system) the moto server process and this process spend."""

    def __init__(self, server_pid: int) -> None:
        self._server = psutil.Process(server_pid)

    def now(self) -> tuple[float, float]:
        t = self._server.cpu_times()
        return t.user + t.system, time.process_time()

    def since(self, then: tuple[float, float], runs: int = 1) -> dict[str, float]:
        """``{"server": s, "client": s}`` per run since ``then``."""
        now = self.now()
        return {"server": (now[0] - then[0]) / runs, "client": (now[1] - then[1]) / runs}


def compacted_scans(
    memory: MemoryStore,
    endpoint: str,
    args: argparse.Namespace,
    history_samples: int,
    end: int,
    full: QueryResult,
) -> dict[str, Any]:
    """Compact a copy of the fleet (``compact_history``), copy it to moto under
    ``fleet-compacted/``, and run the full scan over it, over moto and from memory,
    each the median of as many runs as the raw full scan. Both answers must be the
    raw full scan's. Returns the figures ``print_full_scans`` prints."""
    history, compaction = compact_history(memory, args.hosts, args.windows, history_samples)
    objects = _store(endpoint, pool=2 * args.workers, prefix="fleet-compacted")
    compaction["copied"], compaction["copy_s"] = copy_objects(history, objects, args.load_threads)
    # The padding windows that seal each host's last group start at ``end``: stop there.
    sel = Selector(metrics=("*",), end_ns=end)
    runs = max(1, args.runs - 1)
    kw: dict[str, Any] = {"aggs": FULL_AGGS, "group_by": ("host",), "workers": args.workers}
    over_s3 = _median_run(Repository(objects, SnapshotConfig()), sel, runs, **kw)
    in_memory = _median_run(Repository(history, SnapshotConfig()), sel, runs, **kw)
    check_same(over_s3, full, "full scan of compacted history over moto")
    check_same(in_memory, full, "full scan of compacted history in memory")
    return {
        "compaction": compaction,
        "s3": over_s3.stats,
        "memory": in_memory.stats,
        "tiers_raw": tiers_read(
            Repository(memory, SnapshotConfig()), Selector(metrics=("*",)), args.workers
        ),
        "tiers_compacted": tiers_read(Repository(history, SnapshotConfig()), sel, args.workers),
        "rows": len(full.rows),
    }


def _tiers(read: dict[str, int]) -> str:
    return ", ".join(f"{tier} ({n} objects)" for tier, n in sorted(read.items())) or "none"


def print_full_scans(fs: QueryStats, ls: QueryStats, comp: dict[str, Any]) -> None:
    """The full-scan table with the compacted-history columns beside the raw ones, and
    the compaction's figures: what the scan of history costs next to fresh data."""
    c = comp["compaction"]
    cols = [fs, ls, comp["s3"], comp["memory"]]
    print(
        "| full scan: every metric, every host (mean/min/max/count per host and metric) "
        "| fresh raw objects, moto S3 over HTTP | fresh raw objects, in-memory store "
        "| compacted history, moto S3 over HTTP | compacted history, in-memory store |"
    )
    print("|---|---:|---:|---:|---:|")
    raw_t, comp_t = _tiers(comp["tiers_raw"]), _tiers(comp["tiers_compacted"])
    print(f"| tier read | {raw_t} | {raw_t} | {comp_t} | {comp_t} |")
    print(
        "| samples decoded | " + " | ".join(f"{s.samples_decoded / 1e6:.1f} M" for s in cols) + " |"
    )
    print(
        f"| objects / requests | {fs.objects} / {fs.total_requests} | {ls.objects} / - "
        f"| {cols[2].objects} / {cols[2].total_requests} | {cols[3].objects} / - |"
    )
    print("| MiB read | " + " | ".join(f"{s.bytes_read / 2**20:.1f}" for s in cols) + " |")
    print("| seconds (end to end) | " + " | ".join(f"{s.seconds:.2f}" for s in cols) + " |")
    print(
        "| **M samples/s decoded end to end** | "
        + " | ".join(f"**{s.samples_decoded / s.seconds / 1e6:.2f}**" for s in cols)
        + " |"
    )
    print(
        f"| vs the {TARGET / 1e6:g} M samples/s target | "
        + " | ".join(f"{s.samples_decoded / s.seconds / TARGET:.2f}x" for s in cols)
        + " |"
    )
    (raw_n, raw_b), (left_n, left_b) = c["raw_before"], c["raw_after"]
    comp_n, comp_b = c["compressed_after"]
    print(
        f"\nCompacted history: a copy of the fleet, each host given {c['pad']} newer window(s) "
        f"so its last keyframe group is sealed (the compactor leaves a host's latest group "
        f"raw), compacted raw -> compressed only: {c['samples'] / 1e6:.1f} M samples in "
        f"{c['seconds']:.1f} s, **{c['samples'] / c['seconds'] / 1e6:.2f} M samples/s** "
        f"(one core, in-memory store; {c['requests'].get('get', 0)} GET, "
        f"{c['requests'].get('put', 0)} PUT); raw objects {raw_n} ({raw_b / 2**20:.1f} MiB) "
        f"-> {comp_n} compressed ({comp_b / 2**20:.1f} MiB) + {left_n} raw left "
        f"({left_b / 2**20:.2f} MiB, the newer windows), a second run past the "
        f"deletion delay deleted {c['purge_deletes']} objects (the raw data, their index "
        f"segments, the deletion marks). {c['copied']} objects copied to "
        f"moto under `fleet-compacted/` in {c['copy_s']:.1f} s. Its scans stop at the "
        f"fleet's end (the newer windows are not read) and gave the raw full scan's "
        f"{comp['rows']} rows exactly, over moto and in memory."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--windows", type=int, default=60)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--load-threads", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=20.0,
        help="Also run the selective comparison with this round trip added per request (0: skip).",
    )
    ap.add_argument(
        "--no-compacted",
        action="store_true",
        help="Skip compacting the fleet and the full scan over the compressed tier.",
    )
    args = ap.parse_args()
    server, endpoint = _start_moto()
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        objects = _store(endpoint, pool=2 * args.workers)
        memory = MemoryStore()
        loaded = load_fleet(memory, objects, args.hosts, args.windows, args.load_threads)
        repo = Repository(objects, SnapshotConfig())
        end = T0 + args.windows * MIN
        start = end - 10 * MIN
        sel = Selector(metrics=("gpu.*.power_avg_mw",), start_ns=start, end_ns=end)
        cpu = _Cpu(server.pid)
        then = cpu.now()
        selective = _median_run(
            repo, sel, args.runs, aggs=("mean",), group_by=("host",), workers=args.workers
        )
        cpu_ours = cpu.since(then, args.runs)
        then = cpu.now()
        naive_means, naive_1 = naive(objects, "gpu.*.power_avg_mw", start, end)
        cpu_naive = cpu.since(then)
        _, naive_16 = naive(objects, "gpu.*.power_avg_mw", start, end, workers=args.workers)
        ours = {r["host"]: r["mean"] for r in selective.records()}
        assert ours.keys() == naive_means.keys()
        assert all(abs(ours[h] - naive_means[h]) <= 1e-9 * abs(naive_means[h]) for h in ours)
        full = _median_run(
            repo,
            Selector(metrics=("*",)),
            max(1, args.runs - 1),
            aggs=("mean", "min", "max", "count"),
            group_by=("host",),
            workers=args.workers,
        )
        local = _median_run(
            Repository(memory, SnapshotConfig()),
            Selector(metrics=("*",)),
            max(1, args.runs - 1),
            aggs=("mean", "min", "max", "count"),
            group_by=("host",),
            workers=args.workers,
        )
        assert local.rows == full.rows
        lat: dict[str, Any] = {}
        if args.latency_ms > 0:
            slow = _Latency(objects, args.latency_ms / 1000)
            lat["ours"] = _median_run(
                Repository(slow, SnapshotConfig()),
                sel,
                args.runs,
                aggs=("mean",),
                group_by=("host",),
                workers=args.workers,
            ).stats
            lat["naive16"] = naive(slow, "gpu.*.power_avg_mw", start, end, workers=args.workers)[1]
        comp: dict[str, Any] = {}
        if not args.no_compacted:
            comp = compacted_scans(memory, endpoint, args, loaded["samples"], end, full)
    finally:
        server.terminate()
        server.wait(10)

    st, fs = selective.stats, full.stats
    lists = st.requests.get("list", 0) + st.requests.get("list_dirs", 0)
    title = f"{args.hosts} hosts x {args.windows} snapshots"
    print(f"## Fleet queries on moto S3 (HTTP, subprocess): {title}\n")
    print(
        f"Fleet: {loaded['samples'] / 1e6:.1f} M samples; appended and catalogued in memory in "
        f"{loaded['encode_s']:.1f} s, {loaded['objects']} objects copied to moto in "
        f"{loaded['copy_s']:.1f} s ({args.load_threads} threads).\n"
    )
    print(
        "| selective query: gpu.*.power_avg_mw, last 10 min, all hosts | snapcloud.query "
        "| naive (list + read all, 1 thread) | naive (16 threads) |"
    )
    print("|---|---:|---:|---:|")
    print(f"| seconds | {st.seconds:.2f} | {naive_1['seconds']:.2f} | {naive_16['seconds']:.2f} |")
    print(
        f"| speedup | - | **{naive_1['seconds'] / st.seconds:.1f}x** | "
        f"{naive_16['seconds'] / st.seconds:.1f}x |"
    )
    print(f"| requests | {st.total_requests} | {naive_1['requests']} | {naive_16['requests']} |")
    print(f"| data objects read | {st.objects} | {naive_1['objects']} | {naive_16['objects']} |")
    print(
        f"| bytes read | {st.bytes_read / 2**20:.1f} MiB | {naive_1['bytes'] / 2**20:.1f} MiB "
        f"| {naive_16['bytes'] / 2**20:.1f} MiB |"
    )
    print(
        f"\nRequests vs the layout's minimum: {st.total_requests} made / {st.min_requests} "
        f"minimum (segment reads + {st.objects} objects) = **{st.request_ratio:.2f}x**; "
        f"of the {st.total_requests - st.min_requests} extra, {lists} are listings "
        f"(a selection of every host lists marks/deletions/ and index/ once for the "
        f"fleet; a selection by host lists both per host). The last host was planned "
        f"{st.plan_seconds:.2f} s in (hosts are planned while the first ones are read).\n"
    )
    per_request = cpu_ours["server"] / st.total_requests
    floor_s = st.min_requests * per_request
    print(
        f"CPU, user + system: moto {cpu_ours['server']:.2f} s "
        f"({1000 * per_request:.2f} ms per request) and this process "
        f"{cpu_ours['client']:.2f} s per selective query (mean of {args.runs} runs); moto "
        f"{cpu_naive['server']:.2f} s ({1000 * cpu_naive['server'] / naive_1['requests']:.2f} "
        f"ms per request) and the client {cpu_naive['client']:.2f} s for the sequential "
        f"naive client. moto serves from one Python process, so the layout's "
        f"{st.min_requests} requests cost it at least {floor_s:.2f} s: a client that cost "
        f"nothing would be at most **{naive_1['seconds'] / floor_s:.1f}x** faster than the "
        f"sequential naive client here.\n"
    )
    if lat:
        ours_s, n16 = lat["ours"].seconds, lat["naive16"]
        naive1_s = naive_1["seconds"] + naive_1["requests"] * args.latency_ms / 1000
        print(
            f"With a {args.latency_ms:g} ms round trip added to every request (a model of a "
            f"remote S3; moto alone answers in a few ms): snapcloud.query **{ours_s:.2f} s**; "
            f"naive with 16 threads {n16['seconds']:.2f} s (measured, "
            f"{n16['seconds'] / ours_s:.1f}x); naive sequential {naive1_s:.1f} s (computed: "
            f"the measured {naive_1['seconds']:.1f} s + {naive_1['requests']} round trips, "
            f"{naive1_s / ours_s:.1f}x).\n"
        )
    ls = local.stats
    if comp:
        print_full_scans(fs, ls, comp)
    else:
        print(
            "| full scan: every metric, every host (mean/min/max/count per host and metric) "
            "| moto S3 over HTTP | in-memory store (client-side ceiling) |"
        )
        print("|---|---:|---:|")
        print(
            f"| samples decoded | {fs.samples_decoded / 1e6:.1f} M "
            f"| {ls.samples_decoded / 1e6:.1f} M |"
        )
        print(f"| objects / requests | {fs.objects} / {fs.total_requests} | {ls.objects} / - |")
        print(f"| seconds (end to end) | {fs.seconds:.2f} | {ls.seconds:.2f} |")
        print(
            f"| **M samples/s decoded end to end** "
            f"| **{fs.samples_decoded / fs.seconds / 1e6:.2f}** "
            f"| **{ls.samples_decoded / ls.seconds / 1e6:.2f}** |"
        )
    print(
        f"\nCommand: `.venv/bin/python benchmarks/bench_query.py --hosts {args.hosts} "
        f"--windows {args.windows} --workers {args.workers}` ({os.cpu_count()} CPUs; the moto "
        "server runs in its own process on the same machine)."
    )


if __name__ == "__main__":
    main()
