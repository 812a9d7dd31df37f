"""What range hints save a "last 10 minutes" fleet query over a day of raw history (moto S3).

Run:  .venv/bin/python benchmarks/bench_hints.py [--hosts 10] [--windows 1440] [--runs 2]

Each host holds ``--windows`` one-minute fleet-like snapshots (``snapcloud.synth``,
113 metrics at 1 Hz): at the default keyframe interval of 60 and one-day raw age,
a day is 24 raw keyframe groups, all still raw. The store is built in memory, the
compactor runs once at the end of the day (it compresses nothing: no group is a day
old yet, but it writes a range hint for each of the 23 sealed groups of each host),
and everything is copied to a moto server (a subprocess, over HTTP). Then the same
selective query (``gpu.*.power_avg_mw``, mean per host, the last 10 minutes) runs with
the hints and without them (deleted, then put back), alternately, ``--runs`` times
each; the answers must be equal. Prints a markdown table and the command line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_query import BUCKET, MIN, T0, _start_moto, _store, copy_objects

from snapcloud.backends import MemoryStore
from snapcloud.models import SnapshotConfig
from snapcloud.query import QueryResult, Selector, run_query
from snapcloud.retention import Compactor
from snapcloud.store import HostStream, Repository
from snapcloud.synth import host_snapshots


def _query(repo: Repository, sel: Selector, workers: int) -> QueryResult:
    return run_query(repo, sel, aggs=("mean",), group_by=("host",), workers=workers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--windows", type=int, default=1440)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=16)
    args = ap.parse_args()
    config = SnapshotConfig()
    memory = MemoryStore()
    t = time.perf_counter()
    for h in range(args.hosts):
        snaps = host_snapshots(h, args.windows)
        stream = HostStream(memory, snaps[0].host, config)
        for s in snaps:
            stream.append(s)
    built_s = time.perf_counter() - t
    end = T0 + args.windows * MIN
    report = Compactor(memory, config).run(end)
    hints = sum(h.range_hints_written for h in report.hosts)
    hint_keys = [i.key for i in memory.list("index/") if i.key.endswith(".range")]
    assert len(hint_keys) == hints and report.samples_compacted == 0
    server, endpoint = _start_moto()
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        objects = _store(endpoint, pool=2 * args.workers)
        count, copy_s = copy_objects(memory, objects, 16)
        repo = Repository(objects, config)
        sel = Selector(metrics=("gpu.*.power_avg_mw",), start_ns=end - 10 * MIN, end_ns=end)
        runs: dict[str, list[QueryResult]] = {"with hints": [], "without hints": []}
        for _ in range(args.runs):
            runs["with hints"].append(_query(repo, sel, args.workers))
            for key in hint_keys:
                objects.delete(key)
            runs["without hints"].append(_query(repo, sel, args.workers))
            for key in hint_keys:
                objects.put(key, b"")
        answers = {r.records().__repr__() for rs in runs.values() for r in rs}
        assert len(answers) == 1, "the answers differ"
    finally:
        server.terminate()
    print(
        f"Fleet: {args.hosts} hosts x {args.windows} one-minute windows "
        f"({args.windows // config.keyframe_interval} raw groups per host), built in memory "
        f"in {built_s:.1f} s; compactor wrote {hints} range hints; {count} objects copied "
        f"to moto in {copy_s:.1f} s.\n"
    )
    print(
        "| selective query: gpu.*.power_avg_mw, last 10 min, all hosts | segment reads "
        "| objects | requests (minimum) | seconds (runs) |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, rs in runs.items():
        st = rs[0].stats
        secs = [r.stats.seconds for r in rs]
        print(
            f"| {name} | {st.min_requests - st.objects} | {st.objects} | "
            f"{st.total_requests} ({st.min_requests}) | "
            f"{statistics.median(secs):.2f} ({', '.join(f'{s:.2f}' for s in secs)}) |"
        )
    print(f"\nCommand: `.venv/bin/python benchmarks/bench_hints.py {' '.join(sys.argv[1:])}`")


if __name__ == "__main__":
    main()
