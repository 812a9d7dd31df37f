"""Soak run: simulated hosts record into a moto S3 server through a faulty network.

Run:  bash scripts/soak [--duration 300] [--hosts 8] [--fault-rate 0.10] [--json FILE]

Everything stays on loopback: a moto server, a ``FaultProxy`` in front of it
(500 InternalError, 503 SlowDown, connection resets before and after forwarding,
replies cut mid-body, delays; by default with no cap on failures in a row, so an
operation can exhaust the backend's 5 attempts), and, through the proxy:

- ``--hosts`` recorders (``snapcloud.recorder.Recorder`` on the real clock, one
  thread each, simulated collectors), each acknowledging a window every
  ``--window`` seconds once it is spooled;
- a compactor every ``--compact-every`` seconds, with retention ages scaled down
  (raw 20 s, deletion delay 10 s) so sealed groups move raw -> compressed and the
  raw objects are deleted during the run (archive, which is lossy, is kept out of
  reach, so every acknowledged window must come back bit-exact);
- catalog refreshes and fleet queries every ``--query-every`` seconds.

After ``--duration`` the recorders stop and flush, a last compaction runs, and
everything is checked past the proxy, straight from moto: ``Repository.verify``
of every host, every acknowledged window read back bit-exact (by its spool id, in
order), and fleet queries through the faulty proxy against numpy on what was
acknowledged. Prints a table and a JSON summary; exits 1 if anything was lost or
wrong. ``data_lost`` counts acknowledged windows that are missing or differ.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

os.environ.update(
    AWS_ACCESS_KEY_ID="soak-testing",
    AWS_SECRET_ACCESS_KEY="soak-testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
)
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_var, None)

from snapcloud.backends import S3Store  # noqa: E402 (credentials first)
from snapcloud.collectors import Sample  # noqa: E402
from snapcloud.errors import SnapcloudError  # noqa: E402
from snapcloud.models import ProfileSnapshot, SnapshotConfig  # noqa: E402
from snapcloud.query import Selector, metric_field, read_series, run_query  # noqa: E402
from snapcloud.recorder import Recorder, RecorderConfig, SealedWindow  # noqa: E402
from snapcloud.retention import Compactor  # noqa: E402
from snapcloud.store import Repository  # noqa: E402
from snapcloud.testing import FaultProxy  # noqa: E402

log = logging.getLogger("soak")
NS = 10**9
PREFIX = "soak"
METRICS = (
    "cpu.util",
    "gpu.0.util",
    "gpu.0.power_avg_mw",
    "gpu.0.temp_c",
    "net.rx_bytes",
    "sim.holes",
)
AGGS = ("count", "min", "max", "last", "sum", "mean")


class SimCollector:
    """A host's CPU and one GPU, shaped like the recorder's readings: one-decimal and
    integer gauges, a byte counter, a gauge with NaN holes; deterministic per host."""

    name = "sim"

    def __init__(self, host_index: int, seed: int) -> None:
        self.rng = np.random.default_rng([seed, host_index])
        self.k = 0
        self.rx = float(self.rng.integers(0, 10**9))
        self.host_index = host_index

    def labels(self) -> dict[str, str]:
        return {"gpu.model": "NVIDIA H100 80GB HBM3", "rack": f"r{self.host_index % 3}"}

    def collect(self) -> list[Sample]:
        k, rng = self.k, self.rng
        self.k += 1
        phase = math.sin(k / 25 + self.host_index)
        util = float(np.clip(round(60 + 35 * phase + rng.normal(0, 3), 1), 0, 100))
        self.rx += float(rng.integers(0, 5_000_000))
        holes = float("nan") if k % 37 == 5 else float(rng.normal(0, 1))
        return [
            Sample("cpu.util", round(util * 0.4 + rng.uniform(0, 5), 1), "gauge", "%"),
            Sample("gpu.0.util", round(util), "gauge", "%"),
            Sample("gpu.0.power_avg_mw", float(int(90_000 + 6_000 * util)), "gauge", "mW"),
            Sample("gpu.0.temp_c", float(int(35 + util / 3)), "gauge", "C"),
            Sample("net.rx_bytes", self.rx, "counter", "B"),
            Sample("sim.holes", holes, "gauge", ""),
        ]

    def close(self) -> None:
        pass


class Counters:
    """Thread-safe tallies of the background work."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.values[name] = self.values.get(name, 0) + n


def _every(
    stop: threading.Event, seconds: float, what: str, counters: Counters, job: Callable[[], None]
) -> None:
    """Run ``job`` every ``seconds`` until ``stop``; a backend failure past its retries is
    counted and the job runs again next time (what an operator's cron would do)."""
    while not stop.wait(seconds):
        try:
            job()
            counters.add(f"{what}_ok")
        except SnapcloudError as exc:
            counters.add(f"{what}_failed_after_retries")
            log.info("%s failed after retries (%s); next round retries", what, type(exc).__name__)


def _reference(acked: list[ProfileSnapshot], metric: str) -> tuple[np.ndarray, np.ndarray]:
    ts = np.concatenate([s.metric(metric).timestamps for s in acked])
    vs = np.concatenate([s.metric(metric).values for s in acked])
    return ts, vs


def _check_queries(
    repo: Repository, acked: dict[str, list[ProfileSnapshot]]
) -> tuple[int, list[str]]:
    """Fleet queries (through the faulty proxy) against numpy on what was acknowledged."""
    checked, wrong = 0, []
    sel = Selector(metrics=METRICS)
    result = run_query(repo, sel, aggs=AGGS, group_by=("host",))
    rows = {(r[0], r[1]): dict(zip(result.columns, r, strict=True)) for r in result.rows}
    series = read_series(repo, sel)
    for host, snaps in acked.items():
        for metric in METRICS:
            ts, vs = _reference(snaps, metric)
            got = series.get(host, metric)
            checked += 1
            if not (np.array_equal(got.timestamps, ts) and got.values.tobytes() == vs.tobytes()):
                wrong.append(f"series {host} {metric}")
            finite = vs[~np.isnan(vs)]
            want = {
                "count": int(finite.size),
                "min": float(finite.min()),
                "max": float(finite.max()),
                "last": float(finite[-1]),
                "sum": float(finite.sum()),
                "mean": float(finite.mean()),
            }
            row = rows.get((host, metric_field(metric)))  # gpu.0.x is reported as gpu.*.x
            for agg, value in want.items():
                checked += 1
                have = None if row is None else row[agg]
                exact = agg in ("count", "min", "max", "last")
                ok = (
                    have == value
                    if exact
                    else have is not None
                    and math.isclose(float(have), value, rel_tol=1e-9, abs_tol=1e-6)
                )
                if not ok:
                    wrong.append(f"{agg} {host} {metric}: {have} != {value}")
    return checked, wrong


def soak(args: argparse.Namespace) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host_ip, port = server.get_host_and_port()
    moto_url = f"http://{host_ip}:{port}"
    bucket = f"soak-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=moto_url).create_bucket(Bucket=bucket)
    config = SnapshotConfig(
        keyframe_interval=args.keyframe_interval,
        raw_max_age_ns=20 * NS,
        compressed_max_age_ns=365 * 24 * 3600 * NS,
        archive_max_age_ns=2 * 365 * 24 * 3600 * NS,
        delete_delay_ns=10 * NS,
    )
    proxy = FaultProxy(
        moto_url, rate=args.fault_rate, seed=args.seed, max_consecutive=args.max_consecutive
    ).start()
    hosts = [f"soak-node-{i:03d}" for i in range(args.hosts)]
    acked: dict[str, list[ProfileSnapshot]] = {h: [] for h in hosts}
    summaries: dict[str, Any] = {}
    errors: list[str] = []
    counters = Counters()
    stop = threading.Event()
    started = time.monotonic()

    def faulty_repo() -> Repository:
        return Repository(S3Store(bucket, PREFIX, endpoint_url=proxy.endpoint_url), config)

    with TemporaryDirectory(prefix="snapcloud-soak-") as tmp:

        def record(i: int, host: str) -> None:
            def on_window(w: SealedWindow) -> None:
                acked[host].append(w.snapshot)

            try:
                rec = Recorder(
                    faulty_repo(),
                    host,
                    [SimCollector(i, args.seed)],
                    RecorderConfig(
                        interval_s=args.interval,
                        window_s=args.window,
                        fingerprint="soak",
                        spool_dir=Path(tmp) / host,
                        flush_timeout_s=120.0,
                        lease_wait_s=30.0,
                        backoff_base_s=0.1,
                        backoff_cap_s=2.0,
                    ),
                    on_window=on_window,
                )
                summaries[host] = rec.run(duration=args.duration)
            except BaseException as exc:
                errors.append(f"recorder {host}: {type(exc).__name__}: {exc}")

        def compact() -> None:
            objects = S3Store(bucket, PREFIX, endpoint_url=proxy.endpoint_url)
            report = Compactor(objects, config).run()
            counters.add("groups_compressed", sum(len(h.compressed) for h in report.hosts))
            problems = [p for h in report.hosts for p in h.problems]
            if problems:
                errors.extend(f"compactor: {p}" for p in problems)

        def query() -> None:
            repo = faulty_repo()
            for host in repo.hosts():
                repo.refresh_catalog(host)
            run_query(repo, Selector(metrics=METRICS), aggs=AGGS, group_by=("rack",))
            counters.add("queries_during_run")

        threads = [
            threading.Thread(target=record, args=(i, h), name=f"rec-{h}")
            for i, h in enumerate(hosts)
        ]
        background = [
            threading.Thread(
                target=_every, args=(stop, args.compact_every, "compaction", counters, compact)
            ),
            threading.Thread(
                target=_every, args=(stop, args.query_every, "query_round", counters, query)
            ),
        ]
        for t in threads + background:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        for t in background:
            t.join()
        record_s = time.monotonic() - started

        # A last compaction and the final queries, still through the faults.
        for attempt in range(5):
            try:
                compact()
                break
            except SnapcloudError as exc:
                counters.add("compaction_failed_after_retries")
                log.info("final compaction attempt %d failed: %s", attempt + 1, exc)
        query_checks, wrong = 0, []
        for attempt in range(5):
            try:
                query_checks, wrong = _check_queries(faulty_repo(), acked)
                break
            except SnapcloudError as exc:
                counters.add("final_query_failed_after_retries")
                log.info("final query attempt %d failed: %s", attempt + 1, exc)
        faults = proxy.stats()
        proxy.stop()

    # Verification past the proxy, straight from moto.
    direct = Repository(S3Store(bucket, PREFIX, endpoint_url=moto_url), config)
    reports = direct.verify()
    problems = [f"{p.key}: {p.what}" for r in reports for p in r.problems]
    verified = lost = 0
    tiers: dict[str, int] = {}
    for host in hosts:
        stream = direct.stream(host)
        entries = list(stream.entries())
        for e in entries:
            tier = e.key.split("/", 1)[0]
            tiers[tier] = tiers.get(tier, 0) + 1
        if len(entries) != len(acked[host]):
            errors.append(f"{host}: {len(entries)} stored, {len(acked[host])} acknowledged")
        for seq, snap in enumerate(acked[host]):
            try:
                ok = stream.get(seq) == snap.with_seq(seq)
            except SnapcloudError as exc:
                ok = False
                errors.append(f"{host} seq {seq}: {exc}")
            verified += ok
            lost += not ok
    server.stop()
    acknowledged = sum(len(v) for v in acked.values())
    summary = {
        "duration_s": round(time.monotonic() - started, 1),
        "record_s": round(record_s, 1),
        "hosts": args.hosts,
        "fault_rate": args.fault_rate,
        "max_consecutive": args.max_consecutive,
        "seed": args.seed,
        "requests": faults.requests,
        "requests_by_method": dict(sorted(faults.by_method.items())),
        "faults_injected": faults.failures + faults.faults.get("delay", 0),
        "failures_injected": faults.failures,
        "faults_by_kind": dict(sorted(faults.faults.items())),
        "snapshots_acknowledged": acknowledged,
        "snapshots_verified_bit_exact": verified,
        "data_lost": lost,
        "entries_by_tier": dict(sorted(tiers.items())),
        "verify_problems": problems,
        "verify_orphans": sum(len(r.orphans) for r in reports),
        "query_results_checked": query_checks,
        "query_results_wrong": wrong,
        "recorder_upload_errors_retried": sum(s.errors for s in summaries.values()),
        "recorder_duplicates_skipped": sum(s.duplicates_skipped for s in summaries.values()),
        "recorders_flushed": sum(bool(s.flushed) for s in summaries.values()),
        "spool_dropped": sum(s.dropped for s in summaries.values()),
        "background": dict(sorted(counters.values.items())),
        "errors": errors,
    }
    return summary


def _table(s: dict[str, Any]) -> str:
    rows = [
        ("run", f"{s['duration_s']} s ({s['record_s']} s recording), {s['hosts']} hosts"),
        (
            "fault rate",
            f"{s['fault_rate']} (max in a row: {s['max_consecutive']}), seed {s['seed']}",
        ),
        ("requests made", f"{s['requests']} {s['requests_by_method']}"),
        (
            "faults injected",
            f"{s['faults_injected']} ({s['failures_injected']} failures) {s['faults_by_kind']}",
        ),
        ("snapshots acknowledged", s["snapshots_acknowledged"]),
        ("snapshots verified bit-exact", s["snapshots_verified_bit_exact"]),
        ("data lost", s["data_lost"]),
        ("entries by tier", s["entries_by_tier"]),
        ("verify problems / orphans", f"{len(s['verify_problems'])} / {s['verify_orphans']}"),
        (
            "query results checked / wrong",
            f"{s['query_results_checked']} / {len(s['query_results_wrong'])}",
        ),
        ("recorder upload errors retried", s["recorder_upload_errors_retried"]),
        ("recorders flushed", f"{s['recorders_flushed']} of {s['hosts']}"),
        ("background work", s["background"]),
        ("errors", len(s["errors"])),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"| {k:<{width}} | {v} |" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=300.0, help="seconds of recording")
    p.add_argument("--hosts", type=int, default=8)
    p.add_argument("--fault-rate", type=float, default=0.10)
    p.add_argument("--max-consecutive", type=int, default=None, help="cap on failures in a row")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.2, help="sampling interval, s")
    p.add_argument("--window", type=float, default=2.0, help="snapshot window, s")
    p.add_argument("--keyframe-interval", type=int, default=8)
    p.add_argument("--compact-every", type=float, default=15.0)
    p.add_argument("--query-every", type=float, default=10.0)
    p.add_argument("--json", type=Path, help="also write the summary here")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    summary = soak(args)
    print(_table(summary))
    text = json.dumps(summary, indent=2, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    bad = (
        summary["data_lost"]
        or summary["verify_problems"]
        or summary["query_results_wrong"]
        or summary["errors"]
        or summary["snapshots_verified_bit_exact"] != summary["snapshots_acknowledged"]
        or not summary["query_results_checked"]
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
