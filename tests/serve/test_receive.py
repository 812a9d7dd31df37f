"""``snapcloud serve --receive``: Prometheus remote write 1.0 into file and S3 (moto) stores.

Requests are built with the classes generated from Prometheus's own ``prompb`` .proto
files, compressed with snappy's block format (cramjam), and POSTed over HTTP to the
real app in a real Uvicorn server (and to real ``snapcloud serve`` processes, killed
with SIGKILL); what they held is read back through ``snapcloud.query`` and through
``serve``'s ``/api/v1/query_range``, bit for bit."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
import requests

pytest.importorskip("starlette")
pytest.importorskip("cramjam")
pytest.importorskip("google.protobuf")

import cramjam
import uvicorn

from snapcloud.backends import open_store
from snapcloud.coordination import Lease
from snapcloud.layout import lease_key
from snapcloud.query import Selector, read_series
from snapcloud.serve import ServeConfig, create_app, open_api
from snapcloud.serve._prompb import remote_pb2, types_pb2
from snapcloud.serve._receive import ReceiveConfig, Receiver
from snapcloud.store import Repository
from snapcloud.testing.faultproxy import FaultProxy
from tests.serve.process import wait_ready

ROOT = Path(__file__).resolve().parents[2]
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "User-Agent": "Prometheus/3.5.0",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

Series = tuple[dict[str, str], list[tuple[int, float]]]


def write_request(series: list[Series]) -> bytes:
    """A remote-write body: a ``prometheus.WriteRequest``, labels sorted, snappy block."""
    req = remote_pb2.WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for name in sorted(labels):
            ts.labels.append(types_pb2.Label(name=name, value=labels[name]))
        for t, v in samples:
            ts.samples.append(types_pb2.Sample(value=v, timestamp=t))
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def dcgm(host_n: int, gpu: int, field: str, port: int = 9400) -> dict[str, str]:
    """A dcgm-exporter series as Prometheus sends it: target labels and exporter labels."""
    return {
        "__name__": field,
        "job": "dcgm-exporter",
        "instance": f"gpu-node-{host_n:02d}:{port}",
        "gpu": str(gpu),
        "UUID": f"GPU-{host_n:02d}{gpu:02d}-0000",
        "device": f"nvidia{gpu}",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": f"gpu-node-{host_n:02d}",
    }


def samples(start_ms: int, n: int, seed: int, step_ms: int = 15_000) -> list[tuple[int, float]]:
    """``n`` samples of a series from ``start_ms``: the value a function of the series
    (``seed``) and the time, as an exporter's, so overlapping requests agree."""
    out = []
    for i in range(n):
        t = start_ms + i * step_ms
        rng = np.random.default_rng([seed, t])
        out.append((t, float(rng.uniform(50, 700))))
    return out


# ------------------------------------------------------------------ servers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    """``create_app(api, receiver=...)`` in a real Uvicorn server on loopback."""

    def __init__(self, url: str, endpoint: str | None, spool: Path, **conf: object) -> None:
        self.store_url, self.endpoint = url, endpoint
        self.writer = Repository(open_store(url, endpoint_url=endpoint, create=True))
        config = ReceiveConfig(spool_dir=spool, **conf)  # type: ignore[arg-type]
        self.receiver = Receiver(self.writer, config)
        self.api = open_api(url, endpoint_url=endpoint, config=ServeConfig(timeout_s=60))
        port = _free_port()
        app = create_app(self.api, receiver=self.receiver)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(f"{self.url}/api/v1/write", data=body, headers=headers or HEADERS)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.receiver.close()
        self.writer.close()


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path, moto_server) -> tuple[str, str | None]:
    if request.param == "file":
        return f"file://{tmp_path / 'store'}", None
    bucket = f"receive-{uuid.uuid4().hex[:20]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/fleet", moto_server


@pytest.fixture
def running(store, tmp_path) -> Iterator[Running]:
    r = Running(*store, tmp_path / "spool", flush_s=3600.0)
    try:
        yield r
    finally:
        r.stop()


def stored(url: str, endpoint: str | None, host: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (ns) and values of ``metric`` on ``host``, as ``snapcloud query`` reads them."""
    repo = Repository(open_store(url, endpoint_url=endpoint, create=False))
    try:
        got = read_series(repo, Selector(hosts=(host,), metrics=(metric,)))
    finally:
        repo.close()
    s = got.get(host, metric)
    return np.asarray(s.timestamps), np.asarray(s.values)


def bits(values: list[float] | np.ndarray) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


def _expected(sent: list[tuple[int, float]]) -> tuple[list[int], list[int]]:
    """What the stream must hold: each (timestamp, value bits) once, in time order."""
    uniq = sorted(
        {
            (t * 10**6, b)
            for t, b in zip([t for t, _ in sent], bits([v for _, v in sent]), strict=True)
        }
    )
    return [t for t, _ in uniq], [b for _, b in uniq]


# ------------------------------------------------------------------ tests


def test_dcgm_series_out_of_order_and_resent_are_stored_once_bit_exact(running):
    # 2 hosts x 8 GPUs of dcgm-exporter, plus node_exporter; the second request holds
    # older samples than the first (out of order across requests), the first is sent
    # twice (a retry after a lost 204), and the third overlaps both.
    power: dict[tuple[int, int], list[tuple[int, float]]] = {}
    bodies = []
    for start in (T0_MS + 600_000, T0_MS, T0_MS + 300_000):
        series: list[Series] = []
        for h in range(2):
            for g in range(8):
                got = samples(start, 40, seed=h * 100 + g)
                power.setdefault((h, g), []).extend(got)
                series.append((dcgm(h, g, "DCGM_FI_DEV_POWER_USAGE"), got))
                series.append(
                    (dcgm(h, g, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"), [(start, 1e9 + g)])
                )
            node = {
                "__name__": "node_cpu_seconds_total",
                "job": "node",
                "instance": f"gpu-node-{h:02d}:9100",
                "cpu": "0",
                "mode": "idle",
            }
            series.append((node, [(start, 12.5), (start + 15_000, float("inf"))]))
        bodies.append(write_request(series))
    stale = ({"__name__": "up", "job": "dcgm-exporter", "host": "gpu-node-00"}, [])
    stale_samples = [(T0_MS + 1_000, 1.0), (T0_MS + 2_000, STALE), (T0_MS + 3_000, float("nan"))]
    bodies.append(write_request([(stale[0], stale_samples)]))
    for body in [bodies[0], *bodies]:
        r = running.post(body)
        assert r.status_code == 204, r.text
    assert running.receiver.pending == 9  # a spool file per host per request: 4 x 2 + 1
    assert running.receiver.flush()

    url, endpoint = running.store_url, running.endpoint
    for (h, g), sent in power.items():
        ts, vs = stored(url, endpoint, f"gpu-node-{h:02d}", f"gpu.{g}.power_w")
        want_ts, want_bits = _expected(sent)
        assert ts.tolist() == want_ts and bits(vs) == want_bits
    ts, vs = stored(url, endpoint, "gpu-node-01", "node.cpu_seconds.cpu.0.mode.idle")
    want_ts, want_bits = _expected(_node_samples())
    assert ts.tolist() == want_ts and bits(vs) == want_bits
    ts, vs = stored(url, endpoint, "gpu-node-00", "dcgm-exporter.up")
    assert bits(vs) == bits([v for _, v in stale_samples])  # the staleness marker's bits too
    energy_ts, energy = stored(url, endpoint, "gpu-node-00", "gpu.3.energy_mj")
    assert energy.tolist() == [1e9 + 3] * 3 and len(set(energy_ts.tolist())) == 3

    # serve's query_range answers from what was stored, values as Prometheus writes them
    start_s, end_s = T0_MS // 1000, T0_MS // 1000 + 1185
    r = requests.get(
        f"{running.url}/api/v1/query_range",
        params={
            "query": 'snapcloud_gpu_power_w{host="gpu-node-01", gpu="5"}',
            "start": str(start_s),
            "end": str(end_s),
            "step": "15",
        },
    )
    doc = r.json()
    assert r.status_code == 200, doc
    (series,) = doc["data"]["result"]
    assert series["metric"]["gpu_uuid"] == "GPU-0105-0000"
    assert series["metric"]["gpu_name"] == "NVIDIA H100 80GB HBM3"
    want = dict(power[(1, 5)])
    got = {round(t * 1000): float(v) for t, v in series["values"]}
    assert got == {t: want[t] for t in got} and set(got) == set(want)
    for t, v in series["values"]:  # Go's shortest round-trip formatting: bit-exact
        assert bits([float(v)]) == bits([want[round(t * 1000)]])
    counter = requests.get(
        f"{running.url}/api/v1/series",
        params={
            "match[]": "snapcloud_gpu_energy_mj_total",
            "start": str(start_s),
            "end": str(end_s),
        },
    ).json()
    assert len(counter["data"]) == 16  # the native counter, from a name with no _total


def _node_samples() -> list[tuple[int, float]]:
    out = []
    for start in (T0_MS + 600_000, T0_MS, T0_MS + 300_000):
        out += [(start, 12.5), (start + 15_000, float("inf"))]
    return out


def test_requests_that_can_never_succeed_get_400_with_a_reason(running):
    good = write_request([(dcgm(0, 0, "DCGM_FI_DEV_GPU_TEMP"), [(T0_MS, 41.0)])])
    raw = cramjam.snappy.decompress_raw(good)
    cases = {
        "not snappy": (b"\x00\xff\xff\xff\xff\x0fgarbage", HEADERS, "not snappy block format"),
        "framed snappy": (
            bytes(cramjam.snappy.compress(bytes(raw))),
            HEADERS,
            "not snappy block format",
        ),
        "not protobuf": (
            bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff\xff")),
            HEADERS,
            "not a prometheus.WriteRequest",
        ),
        "no host": (
            write_request([({"__name__": "x", "job": "j"}, [(T0_MS, 1.0)])]),
            HEADERS,
            "neither a host nor an instance label",
        ),
        "bad host": (
            write_request([({"__name__": "x", "host": "a/b"}, [(T0_MS, 1.0)])]),
            HEADERS,
            "host",
        ),
        "time out of range": (
            write_request([(dcgm(0, 0, "DCGM_FI_DEV_GPU_TEMP"), [(10**16, 41.0)])]),
            HEADERS,
            "timestamp is out of range",
        ),
        "control character": (
            write_request(
                [({**dcgm(0, 0, "DCGM_FI_DEV_GPU_TEMP"), "UUID": "GPU-\x01"}, [(T0_MS, 1.0)])]
            ),
            HEADERS,
            "control character",
        ),
        "no name": (
            write_request([({"host": "a"}, [(T0_MS, 1.0)])]),
            HEADERS,
            "no __name__",
        ),
    }
    for what, (body, headers, reason) in cases.items():
        r = running.post(body, headers)
        assert r.status_code == 400, what
        assert reason in r.text and r.text.count("\n") == 1, (what, r.text)
    unsupported = {  # 415: the sender may fall back to another format (vmagent does)
        "gzip": {**HEADERS, "Content-Encoding": "gzip"},
        "json": {**HEADERS, "Content-Type": "application/json"},
        "remote write 2.0": {
            **HEADERS,
            "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        },
    }
    for what, headers in unsupported.items():
        r = running.post(good, headers)
        assert r.status_code == 415 and "must be" in r.text, (what, r.text)
    rejected = len(cases) + len(unsupported)
    assert running.receiver.pending == 0 and running.receiver.stats.rejected == rejected
    r = running.post(good)
    assert r.status_code == 204 and r.headers["X-Prometheus-Remote-Write-Samples-Written"] == "1"


def test_a_family_over_the_cap_keeps_its_first_series_and_warns(running, caplog):
    series = [
        ({"__name__": "node_process_rss_bytes", "instance": "n1:9100", "pid": str(p)}, [(T0_MS, p)])
        for p in range(600)
    ]
    with caplog.at_level(logging.WARNING, "snapcloud.serve.receive"):
        assert running.post(write_request(series)).status_code == 204
        assert running.post(write_request(series)).status_code == 204
    warned = [r for r in caplog.records if "more than 512 series" in r.getMessage()]
    assert len(warned) == 1 and "node_process_rss_bytes" in warned[0].getMessage()
    assert running.receiver.stats.series_dropped == 2 * 88
    assert running.receiver.flush()
    _, vs = stored(running.store_url, running.endpoint, "n1", "node.process_rss_bytes.pid.511")
    assert vs.tolist() == [511.0]
    with pytest.raises(KeyError):
        stored(running.store_url, running.endpoint, "n1", "node.process_rss_bytes.pid.512")


def test_another_writer_holding_the_lease_keeps_samples_spooled(running):
    other = Lease(running.writer.objects, lease_key("gpu-node-00"), "recorder-elsewhere", ttl_s=600)
    other.acquire()
    body = write_request([(dcgm(0, 1, "DCGM_FI_DEV_SM_CLOCK"), [(T0_MS, 1980.0)])])
    assert running.post(body).status_code == 204
    assert not running.receiver.flush()  # held elsewhere: nothing appended, kept spooled
    assert running.receiver.pending == 1
    assert "gpu-node-00" not in running.writer.hosts()
    other.release()
    assert running.receiver.flush()
    _, vs = stored(running.store_url, running.endpoint, "gpu-node-00", "gpu.1.sm_clock_mhz")
    assert vs.tolist() == [1980.0]


def test_a_failing_store_gets_503_once_the_spool_is_full_and_loses_nothing(tmp_path, moto_server):
    bucket = f"receive-{uuid.uuid4().hex[:20]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    with FaultProxy(moto_server, rate=0.0, mix={"503": 1}) as proxy:
        r = Running(
            f"s3://{bucket}/fleet",
            proxy.endpoint_url,
            tmp_path / "spool",
            flush_s=3600.0,
            max_spool_bytes=1_000,
        )
        try:
            proxy.configure(rate=1.0)  # every S3 request now fails, past the client's retries
            acked: list[tuple[int, float]] = []
            refused = None
            for i in range(200):
                got = samples(T0_MS + i * 60_000, 4, seed=3)
                body = write_request([(dcgm(3, 0, "DCGM_FI_DEV_POWER_USAGE"), got)])
                resp = r.post(body)
                if resp.status_code == 204:
                    acked += got
                    if i == 0:
                        assert not r.receiver.flush(timeout=60)  # the upload fails; kept spooled
                    continue
                refused = (resp, body, got)
                break
            assert refused is not None, "the spool bound never answered 503"
            assert len(acked) >= 8  # several requests were acknowledged while it failed
            resp, body, got = refused
            assert resp.status_code == 503 and "retry later" in resp.text
            assert r.receiver.stats.upload_failures >= 1
            proxy.configure(rate=0.0)  # the store is back
            assert r.receiver.flush(timeout=60)
            assert r.post(body).status_code == 204  # Prometheus's retry is taken now
            acked += got
            assert r.receiver.flush(timeout=60)
        finally:
            r.stop()
    ts, vs = stored(f"s3://{bucket}/fleet", moto_server, "gpu-node-03", "gpu.0.power_w")
    want_ts, want_bits = _expected(acked)
    assert ts.tolist() == want_ts and bits(vs) == want_bits


def _serve_process(
    store: tuple[str, str | None], spool: Path, port: int, flush: float
) -> subprocess.Popen[bytes]:
    url, endpoint = store
    cmd = [sys.executable, "-m", "snapcloud", "--store", url]
    if endpoint:
        cmd += ["--endpoint-url", endpoint]
    cmd += [
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--receive",
        "--receive-spool",
        str(spool),
        "--receive-flush",
        str(flush),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc


def test_a_receiver_killed_after_204_delivers_what_it_acknowledged_when_restarted(store, tmp_path):
    spool = tmp_path / "spool"
    port = _free_port()
    proc = _serve_process(store, spool, port, flush=3600.0)  # no upload before the kill
    sent: list[tuple[int, float]] = []
    try:
        for i in range(5):
            got = samples(T0_MS + (4 - i) * 60_000, 4, seed=i)  # newest first
            body = write_request([(dcgm(7, 2, "DCGM_FI_DEV_GPU_UTIL"), got)])
            r = requests.post(f"http://127.0.0.1:{port}/api/v1/write", data=body, headers=HEADERS)
            assert r.status_code == 204
            sent += got
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    url, endpoint = store
    repo = Repository(open_store(url, endpoint_url=endpoint, create=False))
    assert "gpu-node-07" not in repo.hosts()  # acknowledged, spooled, not stored yet
    repo.close()
    port = _free_port()
    proc = _serve_process(store, spool, port, flush=0.2)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ts, vs = stored(url, endpoint, "gpu-node-07", "gpu.2.util_pct")
            except KeyError:
                ts = np.array([])
            if len(ts) >= len(sent) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    want_ts, want_bits = _expected(sent)
    assert ts.tolist() == want_ts and bits(vs) == want_bits, out
    assert not [p for p in spool.rglob("*.snap") if "quarantine" not in p.parts]
    assert os.path.isdir(spool / "gpu-node-07")
    # and `snapcloud query`, as a process, counts what was acknowledged once
    cmd = [sys.executable, "-m", "snapcloud", "query", "--store", url, "--host", "gpu-node-07"]
    cmd += ["--metric", "gpu.2.util_pct", "--agg", "count", "--agg", "sum", "--format", "json"]
    if endpoint:
        cmd += ["--endpoint-url", endpoint]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    (row,) = json.loads(done.stdout)["rows"]
    assert row["count"] == len(want_ts) == len({t for t, _ in sent})
    assert row["sum"] == pytest.approx(float(np.sum(vs)), rel=1e-12)


DATA = ROOT / "tests/collectors/data"


def _exposition_series(text: str, instance: str, job: str, t_ms: int) -> list[Series]:
    """An exposition's samples as Prometheus remote-writes them after scraping it: each
    line's name as written, its labels (read by ``prometheus_client``'s parser), plus
    the target's ``job`` and ``instance``."""
    from prometheus_client.parser import text_string_to_metric_families

    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip()[0] != "#"]
    parsed = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    assert len(parsed) == len(lines)
    out: list[Series] = []
    for line, smp in zip(lines, parsed, strict=True):
        name = line.split("{", 1)[0].split(" ", 1)[0]
        labels = {**smp.labels, "__name__": name, "job": job, "instance": instance}
        out.append((labels, [(t_ms, float(smp.value))]))
    return out


def test_remote_write_names_and_kinds_are_the_scrape_collectors(running):
    # dcgm-exporter and node_exporter pages (the scrape tests' fixtures, including the
    # high-cardinality family over the cap) scraped by the collector, and the same
    # samples remote-written as a Prometheus scraping them sends them.
    from snapcloud.collectors.scrape import ScrapeCollector

    pages = {
        "http://gpu-node-09:9400/metrics": (DATA / "dcgm_exporter_8gpu.prom").read_text(),
        "http://gpu-node-09:9100/metrics": (DATA / "node_exporter.prom").read_text(),
    }
    collector = ScrapeCollector(list(pages), fetch=lambda url, timeout: (pages[url], "text/plain"))
    try:
        scraped = {s.name: s.kind for s in collector.collect() if not s.name.startswith("scrape.")}
        labels = collector.labels()
    finally:
        collector.close()
    series = []
    for url, text in pages.items():
        instance = url.split("/")[2]
        series += _exposition_series(text, instance, "kubernetes-pods", T0_MS)
    assert running.post(write_request(series)).status_code == 204
    assert running.receiver.flush()
    repo = Repository(open_store(running.store_url, endpoint_url=running.endpoint))
    try:
        got = read_series(repo, Selector(hosts=("gpu-node-09",)))
        stream_labels = repo.catalog().get("gpu-node-09").labels
    finally:
        repo.close()
    received = {s.metric: s.kind for s in got}
    assert (
        received == scraped and len(scraped) > 700
    )  # 8 GPUs x fields, node, capped process family
    assert sum(k == "counter" for k in scraped.values()) > 40
    assert {k: stream_labels[k] for k in labels} == labels  # gpu.<i>.uuid, driver_version...


def test_a_spool_that_cannot_be_written_is_a_500_and_the_retry_is_taken(store, tmp_path):
    r = Running(*store, tmp_path / "spool", flush_s=3600.0, max_body_bytes=4096)
    try:
        (tmp_path / "spool" / "gpu-node-05").write_text("not a directory")
        body = write_request([(dcgm(5, 0, "DCGM_FI_DEV_GPU_TEMP"), [(T0_MS, 44.0)])])
        resp = r.post(body)
        assert resp.status_code == 500 and "gpu-node-05" in resp.text  # Prometheus retries
        (tmp_path / "spool" / "gpu-node-05").unlink()
        assert r.post(body).status_code == 204
        big = write_request(
            [(dcgm(5, g, "DCGM_FI_DEV_GPU_TEMP"), samples(T0_MS, 400, g)) for g in range(8)]
        )
        assert len(big) > 4096
        resp = r.post(big)
        assert resp.status_code == 413 and "4096" in resp.text
        assert r.receiver.flush()
    finally:
        r.stop()
    _, vs = stored(*store, "gpu-node-05", "gpu.0.temp_c")
    assert vs.tolist() == [44.0]
