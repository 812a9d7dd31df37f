"""``snapcloud serve`` against ``snapcloud query``: one metric over 100 hosts x 1 hour at a
60 s step, on a moto S3 server (a subprocess, over HTTP), in one run.

The PromQL query is the plain selector ``snapcloud_gpu_power_avg_mw`` as a range query
with ``start = T0 + 60 s - 1 ms`` and a 60 s step: at each step the latest sample at or
before it, i.e. the last sample of each clock minute. The CLI's query is
``--metric 'gpu.*.power_avg_mw' --agg last --group-by host --group-by gpu --step 60``: the
last sample of each minute bucket. The benchmark checks that the two answers are equal
value for value (800 series x 60 minutes), then times both:

- serve: the HTTP request to a Uvicorn server (cold: its first query; warm: the same
  query again, data objects from its cache), requests counted by the query's figures;
- CLI: ``python -m snapcloud query ... --format json`` as a process (what a user runs,
  interpreter start included), and the same query through ``run_query`` in-process.

    .venv/bin/python benchmarks/bench_serve.py --hosts 100 --windows 60
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query import BUCKET, _start_moto, _store, load_fleet

from snapcloud.backends import CountingStore, MemoryStore
from snapcloud.query import Selector, run_query
from snapcloud.serve import PrometheusAPI, ServeCache, ServeConfig, create_app
from snapcloud.store import Repository
from snapcloud.synth import host_snapshots

S = 10**9


def _serve(api: PrometheusAPI) -> tuple[uvicorn.Server, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(api), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--windows", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    moto, endpoint = _start_moto()
    try:
        run(args, endpoint)
    finally:
        moto.terminate()
        moto.wait()


def run(args: argparse.Namespace, endpoint: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    memory = MemoryStore()
    loaded = load_fleet(memory, _store(endpoint, 32), args.hosts, args.windows, 16)
    t0 = host_snapshots(0, 1)[0].window_start
    end = t0 + args.windows * 60 * S
    print(
        f"fleet: {args.hosts} hosts x {args.windows} one-minute windows, "
        f"{loaded['samples'] / 1e6:.1f} M samples, {loaded['objects']} objects on moto"
    )

    # -- snapcloud serve: HTTP against Uvicorn, the store through ServeCache
    counted = CountingStore(_store(endpoint, 32))
    cache = ServeCache(counted)
    api = PrometheusAPI(Repository(cache), ServeConfig(timeout_s=600))
    figures: list[dict[str, Any]] = []
    api.on_query = figures.append
    server, url = _serve(api)
    form = {
        "query": "snapcloud_gpu_power_avg_mw",
        "start": f"{(t0 + 60 * S) / S - 0.001:.3f}",
        "end": f"{end / S - 0.001:.3f}",
        "step": "60",
    }
    serve_runs = []
    for i in range(args.runs):
        before = sum(counted.counts().values())
        t = time.perf_counter()
        doc = requests.post(f"{url}/api/v1/query_range", data=form, timeout=600).json()
        seconds = time.perf_counter() - t
        backend = sum(counted.counts().values()) - before
        serve_runs.append((seconds, backend, figures[-1]))
        print(
            f"serve run {i + 1}: {seconds:.3f} s, {backend} backend requests "
            f"({figures[-1]['requests']} through the cache)"
        )
    server.should_exit = True
    got = {}
    for s in doc["data"]["result"]:
        m = s["metric"]
        got[(m["host"], int(m["gpu"]))] = [(round(float(t)), float(v)) for t, v in s["values"]]

    # -- the CLI: a process, as a user runs it; and run_query in-process
    env = {**os.environ, "SNAPCLOUD_ENDPOINT_URL": endpoint}
    cli = [
        sys.executable,
        "-m",
        "snapcloud",
        "query",
        "--store",
        f"s3://{BUCKET}/fleet",
        "--metric",
        "gpu.*.power_avg_mw",
        "--agg",
        "last",
        "--group-by",
        "host",
        "--group-by",
        "gpu",
        "--step",
        "60",
        "--start",
        str(t0),
        "--end",
        str(end),
        "--format",
        "json",
    ]
    cli_runs = []
    for i in range(args.runs):
        t = time.perf_counter()
        out = subprocess.run(cli, capture_output=True, text=True, env=env, check=True)
        seconds = time.perf_counter() - t
        result = json.loads(out.stdout)
        cli_runs.append((seconds, result["stats"]["total_requests"]))
        print(f"CLI run {i + 1}: {seconds:.3f} s, {result['stats']['total_requests']} requests")
    lib_runs = []
    for _ in range(args.runs):
        repo = Repository(_store(endpoint, 32))
        t = time.perf_counter()
        res = run_query(
            repo,
            Selector(metrics=("gpu.*.power_avg_mw",), start_ns=t0, end_ns=end),
            aggs=("last",),
            group_by=("host", "gpu"),
            step_ns=60 * S,
        )
        lib_runs.append((time.perf_counter() - t, res.stats.total_requests))

    # -- the answers: equal value for value
    want: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for row in result["rows"]:
        key = (row["host"], int(row["gpu"]))
        want.setdefault(key, []).append((row["time"] // S + 60, row["last"]))
    assert set(got) == set(want), "series differ"
    cells = 0
    for key, points in want.items():
        assert [t for t, _ in got[key]] == [t for t, _ in points], key
        assert np.array_equal([v for _, v in got[key]], [v for _, v in points]), key
        cells += len(points)
    print(f"answers equal: {len(want)} series, {cells} values")

    cold, *warm = serve_runs
    print("\n| one metric, 100 hosts x 1 h, 60 s step | seconds | requests to S3 |")
    print("|---|---:|---:|")
    print(f"| serve, first query (cold cache) | {cold[0]:.3f} | {cold[1]} |")
    if warm:
        print(
            f"| serve, again (median of {len(warm)}) | "
            f"{statistics.median(w[0] for w in warm):.3f} | "
            f"{statistics.median(w[1] for w in warm):.0f} |"
        )
    print(
        f"| CLI `snapcloud query` process (median of {len(cli_runs)}) | "
        f"{statistics.median(c[0] for c in cli_runs):.3f} | {cli_runs[0][1]} |"
    )
    print(
        f"| `run_query` in-process (median of {len(lib_runs)}) | "
        f"{statistics.median(x[0] for x in lib_runs):.3f} | {lib_runs[0][1]} |"
    )
    print(f"serve's query figures (cold): {json.dumps(cold[2])}")


if __name__ == "__main__":
    main()
