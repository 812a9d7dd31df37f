"""``snapcloud serve`` over file and S3 (moto) stores, through a real HTTP server: the exact
requests Grafana's Prometheus data source sends, ``prometheus-api-client`` as a real
client, Prometheus's error shapes, and every query of the shipped Grafana dashboard."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.serve.conftest import HOSTS, T0, WINDOWS, S

ROOT = Path(__file__).resolve().parents[2]
END_S = (T0 + WINDOWS * 60 * S) // S  # the fleet's last second


def _grafana_align(t: int, step: int) -> int:
    """Grafana's AlignTimeRange (pkg/promlib/models/query.go): floor to a step multiple."""
    return t // step * step


def _latest(snaps, metric: str, t_ns: int) -> float | None:
    ts = np.concatenate([s.metric(metric).timestamps for s in snaps if metric in s.metric_names])
    vs = np.concatenate([s.metric(metric).values for s in snaps if metric in s.metric_names])
    i = np.searchsorted(ts, t_ns, side="right") - 1
    if i < 0 or ts[i] <= t_ns - 300 * S:
        return None
    return float(vs[i])


def test_grafana_save_and_test(served):
    # pkg/promlib/healthcheck.go: an instant query "1+1" at time 4 (POST by default), then
    # the build info for its heuristics (no "features": a Prometheus).
    r = requests.post(
        f"{served.url}/api/v1/query",
        data={"query": "1+1", "time": "4"},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert r.json() == {"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}}
    info = requests.get(f"{served.url}/api/v1/status/buildinfo").json()
    assert info["status"] == "success" and "features" not in info["data"]
    assert requests.get(f"{served.url}/").ok  # prometheus-api-client's connection check


def test_grafana_range_query_answers_equal_the_raw_samples(served):
    step = 60
    start = _grafana_align(END_S - 900 + 17, step)
    end = _grafana_align(END_S - 1, step)
    host = "gpu-node-0001"
    # pkg/promlib/client/client.go QueryRange: form-encoded POST, step as seconds
    r = requests.post(
        f"{served.url}/api/v1/query_range",
        data={
            "query": f'snapcloud_gpu_power_avg_mw{{host="{host}", gpu="3"}}',
            "start": str(start),
            "end": str(end),
            "step": str(step),
            "timeout": "60s",
        },
    )
    doc = r.json()
    assert r.status_code == 200 and doc["status"] == "success"
    (series,) = doc["data"]["result"]
    assert series["metric"] == {
        "__name__": "snapcloud_gpu_power_avg_mw",
        "host": host,
        "gpu": "3",
        "cluster": "synthetic",
        "gpu_count": "8",
        "gpu_model": series["metric"]["gpu_model"],
        "rack": "r1",
    }
    want = []
    for t in range(start, end + 1, step):
        v = _latest(served.snaps[host], "gpu.3.power_avg_mw", t * S)
        if v is not None:
            want.append([t, repr(v) if v != int(v) else str(int(v))])
    assert series["values"] == want
    assert served.figures and served.figures[-1]["endpoint"] == "query_range"
    assert served.figures[-1]["requests"]  # the query's own requests are logged


def test_grafana_label_browser(served):
    # Grafana's language provider: labels, metric names, label values with match[],
    # start/end snapped to whole minutes, a limit, and the metadata.
    params = {"start": str(END_S - 3600), "end": str(END_S + 60), "limit": "40000"}
    labels = requests.get(f"{served.url}/api/v1/labels", params=params).json()["data"]
    assert {"__name__", "host", "gpu", "cpu", "gpu_model", "rack", "gpu_uuid"} <= set(labels)
    names = requests.get(f"{served.url}/api/v1/label/__name__/values", params=params).json()
    assert {
        "snapcloud_gpu_power_avg_mw",
        "snapcloud_gpu_energy_mj_total",
        "snapcloud_net_rx_bytes_total",
        "snapcloud_gpu_xid_count_total",
        "snapcloud_load_1",
    } <= set(names["data"])
    hosts = requests.get(
        f"{served.url}/api/v1/label/host/values",
        params={**params, "match[]": "snapcloud_gpu_xid_last"},
    ).json()["data"]
    assert hosts == ["gpu-node-0000"]
    all_hosts = requests.get(f"{served.url}/api/v1/label/host/values", params=params).json()
    assert all_hosts["data"] == [f"gpu-node-{i:04d}" for i in range(HOSTS)]
    series = requests.post(
        f"{served.url}/api/v1/series",
        data={**params, "match[]": 'snapcloud_gpu_power_avg_mw{gpu="0"}'},
    ).json()["data"]
    assert len(series) == HOSTS
    assert series[0]["gpu_uuid"] == "GPU-0000"  # gpu.0.uuid labels only GPU 0's series
    meta = requests.get(f"{served.url}/api/v1/metadata").json()["data"]
    assert meta["snapcloud_gpu_energy_mj_total"] == [
        {"type": "counter", "help": "snapcloud metric gpu.*.energy_mj (mJ)", "unit": "mJ"}
    ]
    assert meta["snapcloud_gpu_power_avg_mw"][0]["unit"] == "mW"
    empty = requests.get(
        f"{served.url}/api/v1/label/host/values",
        params={"match[]": 'snapcloud_gpu_power_avg_mw{host="nope"}'},
    ).json()
    assert empty == {"status": "success", "data": []}


def test_prometheus_api_client(served):
    from prometheus_api_client import PrometheusConnect

    prom = PrometheusConnect(url=served.url, disable_ssl=True)
    assert prom.check_prometheus_connection()
    assert "snapcloud_gpu_temp_c" in prom.all_metrics()
    assert "gpu_model" in prom.get_label_names()
    assert prom.get_label_values("rack") == ["r0", "r1"]
    end = datetime.fromtimestamp(END_S, tz=UTC)
    start = datetime.fromtimestamp(END_S - 600, tz=UTC)
    got = prom.custom_query_range(
        "avg by (host) (snapcloud_gpu_util_pct)", start_time=start, end_time=end, step="60"
    )
    assert sorted(s["metric"]["host"] for s in got) == [f"gpu-node-{i:04d}" for i in range(HOSTS)]
    for s in got:
        snaps = served.snaps[s["metric"]["host"]]
        for t, v in s["values"]:
            want = np.mean([_latest(snaps, f"gpu.{g}.util_pct", int(t) * S) for g in range(8)])
            assert float(v) == pytest.approx(want, rel=1e-12)
    current = prom.get_current_metric_value(
        "snapcloud_gpu_temp_c",
        label_config={"host": "gpu-node-0002", "gpu": "7"},
        params={"time": END_S},
    )
    assert len(current) == 1
    assert float(current[0]["value"][1]) == _latest(
        served.snaps["gpu-node-0002"], "gpu.7.temp_c", END_S * S
    )
    meta = prom.get_metric_metadata("snapcloud_net_rx_bytes_total")
    assert meta == [
        {
            "metric_name": "snapcloud_net_rx_bytes_total",
            "type": "counter",
            "help": "snapcloud metric net.rx_bytes (B)",
            "unit": "B",
        }
    ]
    increase = prom.custom_query(
        "sum(increase(snapcloud_gpu_xid_count_total[20m]))", params={"time": END_S}
    )
    assert float(increase[0]["value"][1]) > 0


@pytest.mark.parametrize(
    ("query", "status", "etype", "says"),
    [
        (
            "histogram_quantile(0.9, snapcloud_gpu_power_avg_mw)",
            400,
            "bad_data",
            "function histogram_quantile() is not supported",
        ),
        ("snapcloud_gpu_power_avg_mw > 100", 400, "bad_data", "operator '>' is not supported"),
        ("sum(", 400, "bad_data", 'invalid parameter "query"'),
        (
            "snapcloud_gpu_power_avg_mw / ignoring(host, gpu) snapcloud_gpu_temp_c",
            422,
            "execution",
            "many-to-many matching not allowed",
        ),
    ],
)
def test_error_shapes(served, query, status, etype, says):
    r = requests.post(f"{served.url}/api/v1/query", data={"query": query, "time": str(END_S)})
    assert r.status_code == status
    doc = r.json()
    assert doc["status"] == "error" and doc["errorType"] == etype and says in doc["error"]


def test_parameter_errors_and_limits(served):
    r = requests.get(
        f"{served.url}/api/v1/query_range",
        params={"query": "1", "start": "x", "end": "2", "step": "1"},
    )
    assert (r.status_code, r.json()["errorType"]) == (400, "bad_data")
    assert 'invalid parameter "start"' in r.json()["error"]
    r = requests.get(
        f"{served.url}/api/v1/query_range",
        params={"query": "1", "start": "0", "end": "100000", "step": "1"},
    )
    assert r.status_code == 400 and "11,000 points" in r.json()["error"]
    r = requests.get(f"{served.url}/api/v1/series")
    assert r.status_code == 400 and r.json()["error"] == "no match[] parameter provided"
    r = requests.get(
        f"{served.url}/api/v1/query",
        params={
            "query": "count_over_time(snapcloud_gpu_power_avg_mw[20m])",
            "time": str(END_S),
            "timeout": "0.000001",
        },
    )
    assert (r.status_code, r.json()["errorType"]) == (503, "timeout")


def test_too_many_samples_is_an_execution_error(served, monkeypatch):
    from dataclasses import replace

    monkeypatch.setattr(served.api, "config", replace(served.api.config, max_samples=1000))
    r = requests.get(
        f"{served.url}/api/v1/query",
        params={"query": "count_over_time(snapcloud_gpu_power_avg_mw[20m])", "time": str(END_S)},
    )
    assert r.status_code == 422 and "too many samples" in r.json()["error"]


def test_caches_across_requests(served):
    cache = served.api.repo.objects.inner  # Repository(CountingStore(ServeCache(...)))
    q = {
        "query": "max by (host) (snapcloud_gpu_temp_c)",
        "start": str(END_S - 600),
        "end": str(END_S),
        "step": "60",
    }
    first = requests.post(f"{served.url}/api/v1/query_range", data=q).json()
    misses, hits = cache.misses, cache.hits
    second = requests.post(f"{served.url}/api/v1/query_range", data=q).json()
    assert first == second
    assert cache.misses == misses  # every data object came from the cache
    assert cache.hits > hits


def test_every_dashboard_query(served):
    dash = json.loads((ROOT / "infra/grafana/snapcloud-fleet.json").read_text())
    variables = {"$__rate_interval": "1m15s", "$drilldown": "gpu-node-0000", "$host": ".*"}
    step, start, end = 60, _grafana_align(END_S - 1200, 60), _grafana_align(END_S, 60)
    seen = 0
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            r = requests.post(
                f"{served.url}/api/v1/query_range",
                data={"query": expr, "start": str(start), "end": str(end), "step": str(step)},
            )
            doc = r.json()
            assert r.status_code == 200, (panel["title"], expr, doc)
            values = [v for s in doc["data"]["result"] for _, v in s["values"]]
            assert values, (panel["title"], expr)
            assert not any(v in ("NaN", "+Inf", "-Inf") for v in values), expr
            seen += 1
    assert seen == 18
    for var in dash["templating"]["list"][1:]:
        assert var["definition"] == "label_values(snapcloud_gpu_power_avg_mw, host)"
    hosts = requests.get(
        f"{served.url}/api/v1/label/host/values",
        params={"match[]": "snapcloud_gpu_power_avg_mw", "start": str(start), "end": str(end)},
    ).json()
    assert hosts["data"] == [f"gpu-node-{i:04d}" for i in range(HOSTS)]
    assert not math.isnan(float(END_S))
