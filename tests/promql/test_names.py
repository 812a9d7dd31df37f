"""The documented, stable mapping from snapcloud names to Prometheus series (docs/SERVE.md)."""

from __future__ import annotations

import pytest

from snapcloud.promql import map_metric, series_labels


@pytest.mark.parametrize(
    ("name", "kind", "prom", "index"),
    [
        ("gpu.3.power_mw", "gauge", "snapcloud_gpu_power_mw", {"gpu": "3"}),
        ("gpu.0.mig.1.util_pct", "gauge", "snapcloud_gpu_mig_util_pct", {"gpu": "0", "mig": "1"}),
        (
            "gpu.0.proc.4242.mem_bytes",
            "gauge",
            "snapcloud_gpu_proc_mem_bytes",
            {"gpu": "0", "proc": "4242"},
        ),
        ("gpu.0.energy_mj", "counter", "snapcloud_gpu_energy_mj_total", {"gpu": "0"}),
        ("gpu.0.gpm.sm_util_pct", "gauge", "snapcloud_gpu_gpm_sm_util_pct", {"gpu": "0"}),
        ("cpu.util", "gauge", "snapcloud_cpu_util", {}),
        ("cpu.7.util", "gauge", "snapcloud_cpu_util", {"cpu": "7"}),
        ("net.rx_bytes", "counter", "snapcloud_net_rx_bytes_total", {}),
        ("load.1", "gauge", "snapcloud_load_1", {}),
        ("temp.coretemp.0", "gauge", "snapcloud_temp_coretemp_0", {}),
        (
            "node.cpu_seconds.cpu.0.mode.idle",
            "counter",
            "snapcloud_node_cpu_seconds_cpu_mode_idle_total",
            {"cpu": "0"},
        ),
        ("app.requests_total", "counter", "snapcloud_app_requests_total", {}),
        ("a-b.c%d", "gauge", "snapcloud_a_b_c_d", {}),
        ("host.3.x", "gauge", "snapcloud_host_3_x", {}),  # `host` is never an index label
        ("a.1.2.b", "gauge", "snapcloud_a_2_b", {"a": "1"}),
    ],
)
def test_metric_names(name, kind, prom, index):
    mapped = map_metric(name)
    assert mapped.name(kind) == prom
    assert dict(mapped.index) == index


def test_series_labels_from_the_catalog():
    catalog = {
        "gpu.model": "NVIDIA H100 80GB HBM3",
        "gpu.count": "8",
        "gpu.3.uuid": "GPU-3",
        "gpu.4.uuid": "GPU-4",
        "gpu.3.pod": "",
        "cluster": "a",
        "host": "spoofed",
        "gpu": "x",
    }
    labels = series_labels("node-1", catalog, "gpu.3.power_mw", "gauge")
    assert labels == {
        "__name__": "snapcloud_gpu_power_mw",
        "host": "node-1",
        "gpu": "3",
        "gpu_model": "NVIDIA H100 80GB HBM3",
        "gpu_count": "8",
        "gpu_uuid": "GPU-3",  # gpu.3.* only on GPU 3's series; gpu.3.pod is empty: no label
        "cluster": "a",
        "label_host": "spoofed",
        "label_gpu": "x",
    }
    cpu = series_labels("node-1", catalog, "cpu.util", None)
    assert "__name__" not in cpu and "gpu_uuid" not in cpu and cpu["gpu"] == "x"
