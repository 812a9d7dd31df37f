"""CpuCollector on this host's psutil, and on a psutil with fields that fail."""

from __future__ import annotations

import logging
from collections import Counter
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from snapcloud.collectors import Collector, CpuCollector, Sample
from snapcloud.models import validate_metric_name

COUNTERS = {
    "cpu.ctx_switches",
    "cpu.interrupts",
    "disk.read_bytes",
    "disk.write_bytes",
    "disk.read_ops",
    "disk.write_ops",
    "net.rx_bytes",
    "net.tx_bytes",
    "net.rx_packets",
    "net.tx_packets",
}
ALWAYS_HERE = {  # Linux, which the suite runs on
    "cpu.util",
    "load.1",
    "load.5",
    "load.15",
    "cpu.ctx_switches",
    "cpu.interrupts",
    "mem.used",
    "mem.available",
    "mem.total",
    "swap.used",
    "swap.total",
    "net.rx_bytes",
    "net.tx_bytes",
    "net.rx_packets",
    "net.tx_packets",
    "proc.count",
}
UNITS = {
    "cpu.util": "%",
    "cpu.freq_mhz": "MHz",
    "mem.used": "bytes",
    "swap.total": "bytes",
    "disk.read_ops": "ops",
    "net.rx_packets": "packets",
    "proc.count": "count",
}
_MISSING = object()


class FakePsutil:
    """The real psutil, with some functions replaced or removed, and calls counted."""

    def __init__(self, **overrides: Any) -> None:
        self.overrides = overrides
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = self.overrides.get(name, getattr(psutil, name, _MISSING))
        if value is _MISSING:
            raise AttributeError(name)
        if not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return value(*args, **kwargs)

        return counted


def _by_name(samples: list[Sample]) -> dict[str, Sample]:
    out = {s.name: s for s in samples}
    assert len(out) == len(samples), "duplicate sample names"
    return out


def test_names_kinds_and_units() -> None:
    c = CpuCollector()
    c.collect()
    samples = c.collect()
    s = _by_name(samples)
    assert set(s) >= ALWAYS_HERE
    for sample in samples:
        assert validate_metric_name(sample.name) == sample.name
        assert isinstance(sample.value, float)
        assert sample.kind == ("counter" if sample.name in COUNTERS else "gauge"), sample.name
    for name, unit in UNITS.items():
        if name in s:
            assert s[name].unit == unit
    assert isinstance(c, Collector)
    c.close()


def test_first_collect_primes_cpu_utilisation() -> None:
    c = CpuCollector()
    first = _by_name(c.collect())
    assert "cpu.util" not in first and "cpu.0.util" not in first
    assert "mem.total" in first
    second = _by_name(c.collect())
    cores = psutil.cpu_count(logical=True) or 1
    assert {f"cpu.{i}.util" for i in range(cores)} <= set(second)
    assert 0.0 <= second["cpu.util"].value <= 100.0


def test_values_are_plausible() -> None:
    s = _by_name(CpuCollector().collect())
    assert s["mem.total"].value == psutil.virtual_memory().total
    assert 0 < s["mem.used"].value <= s["mem.total"].value
    assert s["proc.count"].value >= 1
    assert s["cpu.ctx_switches"].value > 0


def test_counters_do_not_go_backwards() -> None:
    c = CpuCollector()
    a, b = _by_name(c.collect()), _by_name(c.collect())
    for name in COUNTERS & set(a):
        assert b[name].value >= a[name].value, name


def test_labels() -> None:
    labels = CpuCollector().labels()
    assert {
        "cpu.model",
        "cpu.logical_cores",
        "cpu.physical_cores",
        "os.kernel",
        "mem.total_bytes",
    } <= set(labels)
    assert labels["cpu.logical_cores"] == str(psutil.cpu_count(logical=True))
    assert labels["mem.total_bytes"] == str(psutil.virtual_memory().total)
    for key in labels:
        validate_metric_name(key)


def test_failing_fields_are_dropped_once_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def no_freq() -> None:
        raise NotImplementedError("no cpufreq here")

    ps = FakePsutil(
        cpu_freq=no_freq,
        disk_io_counters=lambda: None,  # a host without disks
        sensors_temperatures=_MISSING,  # a platform without the function
    )
    c = CpuCollector(ps)
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.cpu"):
        for _ in range(4):
            samples = c.collect()
    names = set(_by_name(samples))
    assert not any(n.startswith(("disk.", "temp.")) or n == "cpu.freq_mhz" for n in names)
    assert names >= ALWAYS_HERE
    assert ps.calls["cpu_freq"] == 1 and ps.calls["disk_io_counters"] == 1
    assert ps.calls["virtual_memory"] >= 4
    lines = [r.getMessage() for r in caplog.records]
    for key in ("cpu.freq_mhz", "disk", "temp"):
        assert sum(line.startswith(f"cpu: {key} ") for line in lines) == 1, lines
    assert "cpu.freq_mhz" not in c.fields and "mem" in c.fields


def test_temperatures_are_named_per_sensor() -> None:
    entry = SimpleNamespace
    ps = FakePsutil(
        sensors_temperatures=lambda: {
            "coretemp": [
                entry(label="Package id 0", current=45.0),
                entry(label="Core 0", current=43.5),
            ],
            "nvme/0 ..x": [entry(label="Composite", current=38.85)],
            "acpitz": [entry(label="", current=None)],
        }
    )
    s = _by_name(CpuCollector(ps).collect())
    assert s["temp.coretemp.0"].value == 45.0 and s["temp.coretemp.0"].unit == "C"
    assert s["temp.coretemp.1"].value == 43.5
    assert s["temp.nvme_0_x.0"].value == 38.85
    assert not any(n.startswith("temp.acpitz") for n in s)
    for name in s:
        validate_metric_name(name)
