"""How fast the moto S3 server answers GETs on this machine: the floor under every
fleet-query figure measured against it (docs/QUERY.md, "Limits and open points").

Usage: ``.venv/bin/python benchmarks/bench_moto_floor.py [--gets 600] [--size 7000]``

Starts ``moto.server`` in a subprocess (as the query benchmark does), puts 400
objects of ``--size`` bytes (a one-minute fleet object is about 7 KB), then reads
``--gets`` of them with plain boto3: one thread, 16 threads, and 2 client
processes. It prints milliseconds per GET for each and the client's own CPU time
per GET. No snapcloud code runs: this is the server and the SDK alone.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from bench_query import _start_moto

BUCKET = "moto-floor"
OBJECTS = 400


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(max_pool_connections=32),
    )  # fmt: skip


def _read(args: tuple[str, range]) -> int:
    endpoint, keys = args
    client = _client(endpoint)
    return sum(
        len(client.get_object(Bucket=BUCKET, Key=f"k{i % OBJECTS}")["Body"].read()) for i in keys
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gets", type=int, default=600)
    ap.add_argument("--size", type=int, default=7000)
    args = ap.parse_args()
    server, endpoint = _start_moto()  # the query benchmark's server, started the same way
    try:
        client = _client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        body = os.urandom(args.size)
        for i in range(OBJECTS):
            client.put_object(Bucket=BUCKET, Key=f"k{i}", Body=body)
        n = args.gets

        def get(i: int) -> int:
            return len(client.get_object(Bucket=BUCKET, Key=f"k{i % OBJECTS}")["Body"].read())

        rows = []
        for _ in range(2):  # the first pass warms connections and caches
            cpu, t = time.process_time(), time.perf_counter()
            for i in range(n):
                get(i)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        rows.append(("1 thread", wall, cpu))
        with ThreadPoolExecutor(16) as pool:
            t = time.perf_counter()
            list(pool.map(get, range(n)))
            rows.append(("16 threads", time.perf_counter() - t, None))
        with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as procs:
            list(procs.map(_read, [(endpoint, range(10)), (endpoint, range(10, 20))]))
            t = time.perf_counter()
            list(procs.map(_read, [(endpoint, range(n // 2)), (endpoint, range(n // 2, n))]))
            rows.append(("2 client processes", time.perf_counter() - t, None))
    finally:
        server.terminate()
        server.wait(10)
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"{n} GETs of {args.size}-byte objects from moto.server ({os.cpu_count()} CPUs)\n")
    print("| client | ms per GET | client CPU ms per GET |")
    print("|---|---:|---:|")
    for name, wall, cpu in rows:
        cpu_s = f"{cpu / n * 1e3:.2f}" if cpu is not None else "-"
        print(f"| {name} | {wall / n * 1e3:.2f} | {cpu_s} |")


if __name__ == "__main__":
    main()
