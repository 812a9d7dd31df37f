"""Storage benchmark: snapcloud's codec and store beside baselines, on the same snapshots.

Run:  .venv/bin/python benchmarks/bench_store.py [--fill 10000] [--hosts 4 --windows 60]

Prints markdown tables (paste into docs/BENCHMARKS.md with the command):
1. stored bytes per sample, encode / decode million samples/s, lossless (checked by
   decoding and comparing bits), for each data set and method;
2. requests per append and p50 append latency at 100 and at --fill snapshots stored,
   against a moto S3 server in a subprocess, over HTTP.

Every method stores one object per snapshot, as the product does. Baselines:
json+zstd-3 per snapshot; the seed's scheme (index-wise delta vs keyframe, 16 B per
stored value, timestamps of deltas dropped: lossy, sizes as the seed accounts them);
Gorilla (gorillacompression, pure Python, timestamps in whole seconds); Parquet+zstd
(pyarrow, a wide table per snapshot when the metrics share timestamps, long otherwise);
pcodec per column.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapcloud.codec import decode, encode_delta, encode_keyframe
from snapcloud.importers import cut_windows, read_csv
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.synth import host_snapshots

NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
KEYFRAME_INTERVAL = 60
Streams = list[list[ProfileSnapshot]]  # one list of snapshots per host stream


# ------------------------------------------------------------------ data sets


def fleet(hosts: int, windows: int) -> Streams:
    return [[s.with_seq(i) for i, s in enumerate(host_snapshots(h, windows))] for h in range(hosts)]


def nab(days: int = 1) -> Streams:
    """The NAB CloudWatch series (5-minute samples) cut into windows of ``days`` days."""
    streams = []
    for path in sorted(NAB.glob("*.csv")):
        series = read_csv(path)
        snaps = cut_windows(path.stem, series, window_ns=days * 86_400 * 10**9)
        streams.append([s.with_seq(i) for i, s in enumerate(snaps)])
    return streams


def seed_case(random_values: bool) -> Streams:
    """The seed's test: 100 snapshots of 10 metrics x 100 values; values identical
    from snapshot to snapshot, only the timestamps move."""
    rng = np.random.default_rng(0)
    values = [
        rng.normal(50, 10, 100) if random_values else np.full(100, float(j)) for j in range(10)
    ]
    snaps = []
    for i in range(100):
        ts = 1_767_225_600 * 10**9 + (i * 100 + np.arange(100, dtype=np.int64)) * 10**9
        ms = [MetricSeries(f"metric.{j}", ts, values[j]) for j in range(10)]
        snaps.append(ProfileSnapshot("seed-host", ms, seq=i))
    return [snaps]


# ------------------------------------------------------------------ methods


def _groups(stream: list[ProfileSnapshot]) -> list[tuple[ProfileSnapshot, ProfileSnapshot]]:
    """(snapshot, its keyframe) pairs as the store would choose them."""
    out = []
    for i, s in enumerate(stream):
        out.append((s, stream[i - i % KEYFRAME_INTERVAL]))
    return out


def snap_encode(streams: Streams) -> list[list[bytes]]:
    return [
        [encode_keyframe(s) if s is k else encode_delta(s, k) for s, k in _groups(st)]
        for st in streams
    ]


def snap_decode(streams: Streams, blobs: list[list[bytes]]) -> list[list[ProfileSnapshot]]:
    out = []
    for _st, bl in zip(streams, blobs, strict=True):
        decoded: list[ProfileSnapshot] = []
        for i, b in enumerate(bl):
            base = None if i % KEYFRAME_INTERVAL == 0 else decoded[i - i % KEYFRAME_INTERVAL]
            decoded.append(decode(b, base=base))
        out.append(decoded)
    return out


def snap_decode_objects(streams: Streams, blobs: list[list[bytes]]) -> list[list[ProfileSnapshot]]:
    """``snap_decode``, then a ``MetricSeries`` per metric, as the baselines' decoders
    build them: a decoded snapshot holds its metrics as columns and builds those
    objects only when asked (architecture D16), so this is the figure to set beside
    the baselines' for a reader that wants an object per metric."""
    out = snap_decode(streams, blobs)
    for decoded in out:
        for snap in decoded:
            snap.metrics  # noqa: B018 - built on first access, timed here
    return out


_PCO: Any = None
_ZC = zstandard.ZstdCompressor(level=3)
_ZD = zstandard.ZstdDecompressor()


def json_encode(streams: Streams) -> list[list[bytes]]:
    return [
        [
            _ZC.compress(
                json.dumps(
                    {
                        "host": s.host,
                        "seq": s.seq,
                        "metrics": {
                            m.name: {"t": m.timestamps.tolist(), "v": m.values.tolist()}
                            for m in s.metrics
                        },
                    }
                ).encode()
            )
            for s in st
        ]
        for st in streams
    ]


def json_decode(streams: Streams, blobs: list[list[bytes]]) -> list[list[ProfileSnapshot]]:
    out = []
    for st, bl in zip(streams, blobs, strict=True):
        dec = []
        for s, b in zip(st, bl, strict=True):
            doc = json.loads(_ZD.decompress(b))
            ms = [
                MetricSeries.trusted(
                    m.name,
                    m.kind,
                    m.unit,
                    np.array(v["t"], dtype=np.int64),
                    np.array(v["v"], dtype=np.float64),
                )
                for m, v in zip(s.metrics, doc["metrics"].values(), strict=True)
            ]
            dec.append(s.with_metrics(ms))
        out.append(dec)
    return out


def seed_sizes(streams: Streams) -> int:
    """The seed's accounting: keyframe 16 B/sample; delta 16 B per value differing by > 1e-10
    from the keyframe's value at the same index (timestamps not stored: lossy)."""
    total = 0
    for st in streams:
        for s, k in _groups(st):
            if s is k:
                total += s.raw_bytes
                continue
            base = {m.name: m.values for m in k.metrics}
            for m in s.metrics:
                b = base.get(m.name)
                if b is None or b.size != m.values.size:
                    total += 16 * len(m)
                else:
                    total += 16 * int(np.sum(~(np.abs(m.values - b) <= 1e-10)))
    return total


def gorilla_encode(streams: Streams) -> list[list[bytes]]:
    import gorillacompression as g

    out = []
    for st in streams:
        blobs = []
        for s in st:
            parts = []
            for m in s.metrics:
                pairs = list(zip((m.timestamps // 10**9).tolist(), m.values.tolist(), strict=True))
                parts.append(g.PairsEncoder.encode_all(pairs)["encoded"])
            blobs.append(b"".join(parts))
        out.append(blobs)
    return out


def parquet_encode(streams: Streams) -> list[list[bytes]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = []
    for st in streams:
        blobs = []
        for s in st:
            buf = io.BytesIO()
            pq.write_table(_arrow_table(s, pa), buf, compression="zstd")
            blobs.append(buf.getvalue())
        out.append(blobs)
    return out


def _arrow_table(s: ProfileSnapshot, pa: Any) -> Any:
    first = s.metrics[0].timestamps if s.metrics else np.zeros(0, np.int64)
    if all(np.array_equal(m.timestamps, first) for m in s.metrics):
        cols = {"timestamp": first} | {m.name: m.values for m in s.metrics}
        return pa.table(cols)
    return pa.table(
        {
            "metric": pa.array(
                [m.name for m in s.metrics for _ in range(len(m))]
            ).dictionary_encode(),
            "timestamp": np.concatenate([m.timestamps for m in s.metrics]),
            "value": np.concatenate([m.values for m in s.metrics]),
        }
    )


def parquet_decode(streams: Streams, blobs: list[list[bytes]]) -> list[list[ProfileSnapshot]]:
    import pyarrow.parquet as pq

    out = []
    for st, bl in zip(streams, blobs, strict=True):
        dec = []
        for s, b in zip(st, bl, strict=True):
            t = pq.read_table(io.BytesIO(b))
            if "metric" in t.column_names:
                names = t.column("metric").to_pylist()
                ts = t.column("timestamp").to_numpy()
                vs = t.column("value").to_numpy()
                ms, pos = [], 0
                for m in s.metrics:
                    assert names[pos : pos + len(m)] == [m.name] * len(m)
                    ms.append(
                        MetricSeries.trusted(
                            m.name, m.kind, m.unit, ts[pos : pos + len(m)], vs[pos : pos + len(m)]
                        )
                    )
                    pos += len(m)
            else:
                ts = t.column("timestamp").to_numpy()
                ms = [
                    MetricSeries.trusted(m.name, m.kind, m.unit, ts, t.column(m.name).to_numpy())
                    for m in s.metrics
                ]
            dec.append(s.with_metrics(ms))
        out.append(dec)
    return out


def pcodec_encode(streams: Streams) -> list[list[bytes]]:
    from pcodec import ChunkConfig, standalone

    global _PCO
    _PCO = ChunkConfig()

    out = []
    for st in streams:
        blobs = []
        for s in st:
            parts = []
            seen: set[bytes] = set()
            for m in s.metrics:
                key = m.timestamps.tobytes()
                if key not in seen:
                    seen.add(key)
                    parts.append(standalone.simple_compress(m.timestamps, _PCO))
                parts.append(standalone.simple_compress(m.values, _PCO))
            blobs.append(b"".join(len(p).to_bytes(4, "little") + p for p in parts))
        out.append(blobs)
    return out


def pcodec_decode(streams: Streams, blobs: list[list[bytes]]) -> list[list[ProfileSnapshot]]:
    from pcodec import standalone

    out = []
    for st, bl in zip(streams, blobs, strict=True):
        dec = []
        for s, b in zip(st, bl, strict=True):
            parts, pos = [], 0
            while pos < len(b):
                n = int.from_bytes(b[pos : pos + 4], "little")
                parts.append(b[pos + 4 : pos + 4 + n])
                pos += 4 + n
            it = iter(parts)
            seen: dict[bytes, np.ndarray] = {}
            ms = []
            for m in s.metrics:
                key = m.timestamps.tobytes()
                if key not in seen:
                    seen[key] = standalone.simple_decompress(next(it))
                ms.append(
                    MetricSeries.trusted(
                        m.name, m.kind, m.unit, seen[key], standalone.simple_decompress(next(it))
                    )
                )
            dec.append(s.with_metrics(ms))
        out.append(dec)
    return out


def _same(a: Streams, b: list[list[ProfileSnapshot]]) -> bool:
    for sa, sb in zip(a, b, strict=True):
        for x, y in zip(sa, sb, strict=True):
            for m, n in zip(x.metrics, y.metrics, strict=True):
                if m.timestamps.tobytes() != n.timestamps.tobytes():
                    return False
                if m.values.tobytes() != n.values.tobytes():
                    return False
    return True


METHODS: dict[str, tuple[Callable[[Streams], list[list[bytes]]], Any]] = {
    "snapcloud": (snap_encode, snap_decode),
    "json+zstd-3": (json_encode, json_decode),
    "gorilla": (gorilla_encode, None),
    "parquet+zstd": (parquet_encode, parquet_decode),
    "pcodec": (pcodec_encode, pcodec_decode),
}

OBJECTS_ROW = "snapcloud, + metric objects"


def _once(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def compare(name: str, streams: Streams, repeat: int) -> list[dict[str, Any]]:
    """Every method on ``streams``: sizes, losslessness, and the best of ``repeat`` timed
    rounds. Rounds are interleaved (round 1 of every method, then round 2, ...) so that
    every method meets the same phases of this shared machine's speed, which drifts by
    more than the margins measured here."""
    samples = sum(s.sample_count for st in streams for s in st)
    timers: dict[str, tuple[Callable[[], Any], Callable[[Any], Any] | None]] = {}
    for method, (enc, dec) in METHODS.items():
        timers[method] = (
            lambda enc=enc: enc(streams),
            None if dec is None else lambda blobs, dec=dec: dec(streams, blobs),
        )
        if method == "snapcloud":
            timers[OBJECTS_ROW] = (
                timers[method][0],
                lambda blobs: snap_decode_objects(streams, blobs),
            )
    best: dict[str, list[float]] = {m: [float("inf"), float("inf")] for m in timers}
    blobs: dict[str, Any] = {}
    lossless: dict[str, bool | None] = {}
    for r in range(repeat):
        for method, (enc, dec) in timers.items():
            if r and method == "gorilla":
                continue  # pure Python: one round is plenty
            t_enc, blobs[method] = _once(enc)
            best[method][0] = min(best[method][0], t_enc)
            if dec is not None:
                t_dec, decoded = _once(lambda dec=dec, b=blobs[method]: dec(b))
                best[method][1] = min(best[method][1], t_dec)
                if r == 0:
                    lossless[method] = _same(streams, decoded)
    rows = []
    for method in timers:
        size = sum(len(b) for bl in blobs[method] for b in bl)
        t_enc, t_dec = best[method]
        rows.append(
            {
                "data": name,
                "method": method,
                "bytes_per_sample": size / samples,
                # The objects row encodes as snapcloud does: its encode column is that one.
                "encode_msps": None if method == OBJECTS_ROW else samples / t_enc / 1e6,
                "decode_msps": samples / t_dec / 1e6 if t_dec < float("inf") else None,
                "lossless": lossless.get(method),
                "stored_bytes": size,
                "samples": samples,
            }
        )
    seed = seed_sizes(streams)
    rows.append(
        {
            "data": name,
            "method": "seed scheme (lossy)",
            "bytes_per_sample": seed / samples,
            "encode_msps": None,
            "decode_msps": None,
            "lossless": False,
            "stored_bytes": seed,
            "samples": samples,
        }
    )
    raw = 16 * samples
    for r in rows:
        r["vs_raw"] = r["stored_bytes"] / raw
    return rows


# ------------------------------------------------------------------ S3 appends


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def append_latency(fill: int, probe: int) -> dict[str, Any]:
    """p50 append latency at 100 and ``fill`` stored snapshots, on a moto server subprocess.

    Two host streams, each in a bucket of its own: one filled to 100 snapshots, one
    to ``fill``. The probe then appends to them in turn, ``probe`` times each, so
    the two latencies are taken side by side (this machine's speed drifts by more
    than the ratio's margin between two probes taken minutes apart)."""
    import boto3

    from snapcloud.backends import CountingStore, S3Store
    from snapcloud.models import SnapshotConfig
    from snapcloud.store import HostStream

    port = _free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        stores, streams = [], []
        for bucket in ("bench-small", "bench-big"):
            client.create_bucket(Bucket=bucket)
            stores.append(CountingStore(S3Store(bucket, "p", endpoint_url=endpoint)))
            streams.append(HostStream(stores[-1], "bench-host", SnapshotConfig()))
        rng = np.random.default_rng(0)

        def snap(i: int) -> ProfileSnapshot:
            ts = (1_767_225_600 + i * 60 + np.arange(60, dtype=np.int64)) * 10**9
            ms = [MetricSeries(f"m.{j}", ts, np.round(rng.normal(50, 5, 60), 1)) for j in range(10)]
            return ProfileSnapshot("bench-host", ms)

        small, big = streams
        while small.next_seq < 100:
            small.append(snap(small.next_seq))
        t0 = time.perf_counter()
        while big.next_seq < fill:
            big.append(snap(big.next_seq))
        fill_s = time.perf_counter() - t0
        lat: list[list[float]] = [[], []]
        for counting in stores:
            counting.reset()
        for _ in range(probe):
            for i, stream in enumerate(streams):
                s = snap(stream.next_seq)
                t = time.perf_counter()
                stream.append(s)
                lat[i].append(time.perf_counter() - t)
        p50_small, p50_big = (statistics.median(x) * 1e3 for x in lat)
        req_small, req_big = (sum(c.counts().values()) / probe for c in stores)
        return {
            "p50_ms_at_100": p50_small,
            "p50_ms_at_fill": p50_big,
            "stored_at_fill": fill,
            "ratio": p50_big / p50_small,
            "requests_per_append_at_100": req_small,
            "requests_per_append_at_fill": req_big,
            "fill_seconds": fill_s,
        }
    finally:
        server.terminate()
        server.wait(10)


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--windows", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fill", type=int, default=10_000)
    ap.add_argument("--probe", type=int, default=200)
    ap.add_argument("--skip-s3", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    args = ap.parse_args()

    data = {
        f"fleet 1 Hz ({args.hosts} hosts x {args.windows} x 60 s)": fleet(args.hosts, args.windows),
        "NAB CloudWatch (17 series, 1-day windows: 288 samples/object)": nab(1),
        "NAB CloudWatch (17 series, 7-day windows: 2016 samples/object)": nab(7),
        "seed case, constant values": seed_case(False),
        "seed case, random values repeated": seed_case(True),
    }
    rows: list[dict[str, Any]] = []
    for name, streams in data.items():
        rows.extend(compare(name, streams, args.repeat))
    print(
        "| data | method | bytes/sample | vs raw 16 B | encode M samples/s "
        "| decode M samples/s | lossless |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['data']} | {r['method']} | {r['bytes_per_sample']:.3f} | {r['vs_raw']:.4f} | "
            f"{_fmt(r['encode_msps'], '.2f')} | {_fmt(r['decode_msps'], '.2f')} | "
            f"{'-' if r['lossless'] is None else ('yes' if r['lossless'] else 'no')} |"
        )
    print()
    for name in data:
        by = {r["method"]: r for r in rows if r["data"] == name}
        snap = by["snapcloud"]["bytes_per_sample"]
        print(
            f"- {name}: snapcloud bytes / baseline bytes: "
            + ", ".join(
                f"/ {m} = {snap / r['bytes_per_sample']:.3f}"
                for m, r in by.items()
                if m not in ("snapcloud", OBJECTS_ROW)
            )
        )
    s3: dict[str, Any] = {}
    if not args.skip_s3:
        s3 = append_latency(args.fill, args.probe)
        print()
        print(f"| appends on moto S3 (HTTP) | at 100 stored | at {s3['stored_at_fill']} stored |")
        print("|---|---:|---:|")
        print(
            f"| p50 append latency (ms) | {s3['p50_ms_at_100']:.2f} | {s3['p50_ms_at_fill']:.2f} |"
        )
        print(
            f"| requests per append | {s3['requests_per_append_at_100']:.2f} | "
            f"{s3['requests_per_append_at_fill']:.2f} |"
        )
        print(
            f"\np50 ratio (at {s3['stored_at_fill']} / at 100): {s3['ratio']:.3f}; "
            f"fill took {s3['fill_seconds']:.0f} s"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "s3": s3}, indent=2))


if __name__ == "__main__":
    main()
