"""The scrape collector on fixtures written from dcgm-exporter's and node_exporter's
documented exposition formats, served over loopback HTTP, recorded into a store."""

from __future__ import annotations

import http.server
import logging
import math
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

pytest.importorskip("prometheus_client")

from snapcloud.backends import MemoryStore
from snapcloud.collectors.scrape import STALE_NAN, ScrapeCollector, parse_target
from snapcloud.errors import ValidationError
from snapcloud.recorder import Recorder, RecorderConfig
from snapcloud.store import Repository

DATA = Path(__file__).parent / "data"
DCGM = (DATA / "dcgm_exporter_8gpu.prom").read_text()
NODE = (DATA / "node_exporter.prom").read_text()


class _Exporter(http.server.BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, tuple[int, str, str]]] = {}

    def do_GET(self) -> None:
        status, ctype, body = self.pages.get(self.path, (404, "text/plain", "no such page"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def exporter() -> Iterator[tuple[str, dict[str, tuple[int, str, str]]]]:
    pages: dict[str, tuple[int, str, str]] = {
        "/dcgm": (200, "text/plain; version=0.0.4; charset=utf-8", DCGM),
        "/node": (200, "text/plain; version=0.0.4; charset=utf-8", NODE),
    }
    handler = type("Handler", (_Exporter,), {"pages": pages})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        server.server_close()


def _by_name(samples):
    return {s.name: s for s in samples}


def test_targets_and_jobs():
    assert parse_target("http://localhost:9400/metrics").job == "dcgm"
    assert parse_target("http://localhost:9100/metrics").job == "node"
    assert parse_target("http://x:8080/metrics", 3).job == "scrape3"
    assert parse_target("app=http://x:8080/metrics") == parse_target("app=http://x:8080/metrics")
    assert parse_target("app=http://x:8080/metrics").job == "app"
    with pytest.raises(ValidationError, match="not an http"):
        parse_target("ftp://x/metrics")
    with pytest.raises(ValidationError, match="repeat"):
        ScrapeCollector(["http://a:9400/m", "http://b:9400/m"])


def test_dcgm_exporter_names_labels_and_kinds(exporter):
    base, _ = exporter
    c = ScrapeCollector([f"dcgm={base}/dcgm"])
    got = _by_name(c.collect())
    # native names where the meaning and unit are identical
    assert got["gpu.3.temp_c"].value == 58 and got["gpu.3.temp_c"].unit == "C"
    assert got["gpu.0.util_pct"].value == 97
    assert got["gpu.7.sm_clock_mhz"].value == 1980
    assert got["gpu.1.energy_mj"].kind == "counter" and got["gpu.1.energy_mj"].value == 123456789013
    assert got["gpu.2.clock_event_reasons"].value == 4
    assert got["gpu.5.xid_last"].value == 79
    # the unit in the name where the native one differs
    assert got["gpu.4.power_w"].value == 616.25 and got["gpu.4.power_w"].unit == "W"
    assert got["gpu.0.fb_used_mib"].value == 80000
    # the rest under gpu.<i>.dcgm.<field>
    assert got["gpu.6.dcgm.prof_pipe_tensor_active"].value == 0.41
    assert got["gpu.6.dcgm.pcie_replay_counter"].kind == "counter"
    labels = c.labels()
    assert labels["gpu.0.uuid"] == "GPU-6c4b53ac-0000-4c1e-9a3e-5c0a2f6d9e00"
    assert labels["gpu.0.pod"] == "llm-train-0" and labels["gpu.3.namespace"] == "ml"
    assert labels["gpu.0.container"] == "trainer" and "gpu.5.pod" not in labels  # empty
    assert labels["gpu.2.name"] == "NVIDIA H100 80GB HBM3"
    assert labels["driver_version"] == "550.90.07"
    assert got["scrape.dcgm.up"].value == 1
    assert len([n for n in got if n.startswith("gpu.")]) == 25 * 8


def test_node_exporter_histogram_summary_nan_inf_and_cap(exporter, caplog):
    base, _ = exporter
    c = ScrapeCollector(
        [f"{base.replace('127.0.0.1', 'localhost')}/node"], max_series_per_family=100
    )
    with caplog.at_level(logging.WARNING):
        got = _by_name(c.collect())
    assert got["load.1"].value == 3.41 and got["load.15"].value == 2.87
    assert got["mem.available"].unit == "bytes"
    assert got["scrape0.node_cpu_seconds.cpu.1.mode.user"].kind == "counter"
    # summary: quantiles are gauges (one is NaN), _sum and _count counters
    q1 = got["scrape0.go_gc_duration_seconds.quantile.1"]
    assert math.isnan(q1.value) and q1.kind == "gauge"
    assert got["scrape0.go_gc_duration_seconds_count"].kind == "counter"
    # histogram: buckets (with le="+Inf"), sum and count are counters
    bucket = got["scrape0.prometheus_http_request_duration_seconds_bucket.handler._metrics.le._Inf"]
    assert bucket.value == 2843 and bucket.kind == "counter"
    assert got[
        "scrape0.node_filesystem_avail_bytes.device.tmpfs.fstype.tmpfs.mountpoint._run"
    ].value == (math.inf)
    # 800 process series: the first 100 kept, the rest dropped with one warning
    procs = [n for n in got if n.startswith("scrape0.node_processes_cpu_seconds")]
    assert len(procs) == 100
    assert got["scrape.scrape0.dropped"].value == 700
    assert sum("has more than 100 series" in r.message for r in caplog.records) == 1
    with caplog.at_level(logging.WARNING):
        again = _by_name(c.collect())  # memoized: the same samples, no second warning
    assert sum("has more than 100 series" in r.message for r in caplog.records) == 1
    bits = lambda d: {  # noqa: E731  (NaN == NaN by bits)
        n: struct.pack("<d", s.value) for n, s in d.items() if not n.endswith("duration_ms")
    }
    assert bits(again) == bits(got)
    assert c.full_parses == 1


def test_memoized_parse_follows_changes(exporter):
    base, pages = exporter
    c = ScrapeCollector([f"dcgm={base}/dcgm"])
    c.collect()
    pages["/dcgm"] = (200, "text/plain", DCGM.replace("} 612.25", "} 700.5"))
    assert _by_name(c.collect())["gpu.0.power_w"].value == 700.5
    assert c.full_parses == 1  # only values changed
    pages["/dcgm"] = (200, "text/plain", DCGM.replace('pod="llm-train-0"', 'pod="llm-train-1"'))
    got = c.collect()
    assert c.full_parses == 2 and c.labels()["gpu.0.pod"] == "llm-train-1"
    assert _by_name(got)["gpu.0.power_w"].value == 612.25


def test_failed_target_is_counted_marked_stale_and_others_go_on(exporter):
    base, pages = exporter
    c = ScrapeCollector([f"dcgm={base}/dcgm", f"node={base}/node"], timeout_s=1.0)
    first = _by_name(c.collect())
    assert first["scrape.dcgm.up"].value == 1
    pages["/dcgm"] = (500, "text/plain", "boom")
    second = _by_name(c.collect())
    assert second["scrape.dcgm.up"].value == 0
    assert second["scrape.dcgm.failures"].value == 1
    stale = struct.pack("<d", second["gpu.0.temp_c"].value)
    assert stale == struct.pack("<d", STALE_NAN)  # every dcgm series ended, once
    assert second["load.1"].value == 3.41  # the other target goes on
    third = _by_name(c.collect())
    assert "gpu.0.temp_c" not in third and third["scrape.dcgm.failures"].value == 2
    unreachable = ScrapeCollector(["x=http://127.0.0.1:9/metrics"], timeout_s=0.5)
    assert _by_name(unreachable.collect())["scrape.x.up"].value == 0


def test_vanished_series_gets_one_stale_marker(exporter):
    base, pages = exporter
    c = ScrapeCollector([f"dcgm={base}/dcgm"])
    c.collect()
    pages["/dcgm"] = (
        200,
        "text/plain",
        "\n".join(ln for ln in DCGM.splitlines() if 'gpu="7"' not in ln) + "\n",
    )
    got = _by_name(c.collect())
    assert struct.pack("<d", got["gpu.7.temp_c"].value) == struct.pack("<d", STALE_NAN)
    assert "gpu.7.temp_c" not in _by_name(c.collect())


def test_openmetrics_by_content_type(exporter):
    base, pages = exporter
    om = (
        "# TYPE app_requests counter\n# UNIT app_requests requests\n"
        'app_requests_total{code="200"} 10.0\n'
        'app_requests_created{code="200"} 1.7e9\n'
        "# EOF\n"
    )
    pages["/om"] = (200, "application/openmetrics-text; version=1.0.0; charset=utf-8", om)
    got = _by_name(ScrapeCollector([f"app={base}/om"]).collect())
    assert got["app.requests.code.200"].value == 10.0
    assert got["app.requests.code.200"].kind == "counter"


def test_record_scrape_end_to_end(exporter, tmp_path):
    """Recorder + scrape collector over loopback HTTP into a store; read back with the
    PromQL engine that serves Grafana."""
    pytest.importorskip("promql_parser")
    from snapcloud.promql import Evaluator, StoreSource

    base, _ = exporter
    repo = Repository(MemoryStore())
    collector = ScrapeCollector([f"dcgm={base}/dcgm", f"node={base}/node"])
    config = RecorderConfig(
        interval_s=0.05,
        window_s=0.5,
        fingerprint="scrape-test",
        spool_dir=tmp_path / "spool",
        align=False,
        lease_wait_s=1.0,
    )
    recorder = Recorder(repo, "gpu-node-0001", [collector], config)
    try:
        summary = recorder.run(duration=1.2)
    finally:
        collector.close()
    assert summary.uploaded >= 2 and summary.flushed
    repo.refresh_catalog("gpu-node-0001")
    stream = repo.stream("gpu-node-0001")
    last = stream.get(stream.next_seq - 1)
    assert last.labels["gpu.0.pod"] == "llm-train-0"
    assert last.metric("gpu.4.power_w").values[-1] == 616.25
    ev = Evaluator(StoreSource(repo))
    end = last.window_end
    got = ev.instant('snapcloud_gpu_power_w{gpu="2"}', end)
    (series,) = got.series
    labels = dict(series.labels)
    assert labels["gpu_pod"] == "llm-train-0" and labels["gpu_namespace"] == "ml"
    assert labels["gpu_uuid"].startswith("GPU-6c4b53ac-0002")
    assert series.values[0] == 614.25
    four = dict(ev.instant('snapcloud_gpu_power_w{gpu="4"}', end).series[0].labels)
    assert "gpu_pod" not in four  # dcgm-exporter's pod="" is no label
    up = ev.instant("snapcloud_scrape_dcgm_up", end)
    assert up.series[0].values[0] == 1
