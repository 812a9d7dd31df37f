"""GpuCollector against the fake pynvml: fields, kinds, caching, fallbacks, lost GPUs, MIG."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_pynvml import GIB, H100_RESERVED, H100_TOTAL, NVMLError_Timeout, make_fake_nvml

from snapcloud.collectors import Collector, GpuCollector, Sample
from snapcloud.collectors import _nvml as nvml_module
from snapcloud.collectors import gpu as gpu_module
from snapcloud.errors import ValidationError
from snapcloud.models import validate_metric_name

DOCS = Path(__file__).resolve().parents[2] / "docs" / "GPU.md"

DEFAULT_SUFFIXES = {
    "util_pct",
    "mem_util_pct",
    "fb_used_bytes",
    "fb_free_bytes",
    "fb_total_bytes",
    "power_mw",
    "power_limit_mw",
    "energy_mj",
    "temp_c",
    "mem_temp_c",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "gfx_clock_mhz",
    "clock_event_reasons",
    "ecc_corrected",
    "ecc_uncorrected",
    "remapped_rows_corr",
    "remapped_rows_unc",
    "remapped_rows_pending",
    "remapped_rows_failure",
    "enc_util_pct",
    "dec_util_pct",
    "pstate",
    "lost",
}  # fan_pct: the default fake answers NotSupported, like an H100 SXM
COUNTERS = {"energy_mj", "ecc_corrected", "ecc_uncorrected", "xid_count"}
UNITS = {
    "util_pct": "%",
    "fb_used_bytes": "bytes",
    "power_mw": "mW",
    "power_limit_mw": "mW",
    "energy_mj": "mJ",
    "temp_c": "C",
    "mem_temp_c": "C",
    "sm_clock_mhz": "MHz",
    "clock_event_reasons": "bitmask",
    "pcie_tx_kbps": "KB/s",
    "lost": "bool",
}
# Per-device NVML calls of one steady-state sample with the default fields.
STEADY_CALLS_PER_DEVICE = {
    "nvmlDeviceGetUtilizationRates": 1,
    "nvmlDeviceGetMemoryInfo_v2": 1,
    "nvmlDeviceGetPowerUsage": 1,
    "nvmlDeviceGetEnforcedPowerLimit": 1,
    "nvmlDeviceGetTotalEnergyConsumption": 1,
    "nvmlDeviceGetTemperatureV": 1,
    "nvmlDeviceGetFieldValues": 1,
    "nvmlDeviceGetClockInfo": 3,
    "nvmlDeviceGetCurrentClocksEventReasons": 1,
    "nvmlDeviceGetTotalEccErrors": 2,
    "nvmlDeviceGetRemappedRows": 1,
    "nvmlDeviceGetEncoderUtilization": 1,
    "nvmlDeviceGetDecoderUtilization": 1,
    "nvmlDeviceGetPerformanceState": 1,
}


@pytest.fixture
def opened() -> Iterator[list[GpuCollector]]:
    """Collectors a test opens; closed after it."""
    collectors: list[GpuCollector] = []
    yield collectors
    for c in collectors:
        c.close()


def _open(opened: list[GpuCollector], nv: ModuleType, **kw: Any) -> GpuCollector:
    c = GpuCollector.open(nv, **kw)
    opened.append(c)
    return c


def _by_name(samples: list[Sample]) -> dict[str, Sample]:
    out = {s.name: s for s in samples}
    assert len(out) == len(samples), "duplicate sample names"
    return out


def _suffixes(samples: list[Sample], prefix: str) -> set[str]:
    return {
        s.name[len(prefix) + 1 :]
        for s in samples
        if re.match(rf"{re.escape(prefix)}\.[a-z]", s.name)
    }


# --- names, kinds, units ------------------------------------------------------


def test_names_are_valid_and_kinds_and_units_right(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(mig_devices={7: 2})
    c = _open(opened, nv, opt_in={"pcie", "processes", "xid", "gpm"})
    samples = c.collect() + c.collect()
    for s in samples:
        assert validate_metric_name(s.name) == s.name
        assert isinstance(s.value, float)
        assert s.kind in ("gauge", "counter")
    for s in _by_name(c.collect()).values():
        field = s.name.rsplit(".", 1)[-1]
        assert s.kind == ("counter" if field in COUNTERS else "gauge"), s.name
        if field in UNITS and ".mig." not in s.name:
            assert s.unit == UNITS[field], s.name
    assert isinstance(c, Collector)


def test_default_fields_of_every_device(opened: list[GpuCollector]) -> None:
    c = _open(opened, make_fake_nvml())
    samples = c.collect()
    assert c.available and c.reason == ""
    for i in range(8):
        assert _suffixes(samples, f"gpu.{i}") == DEFAULT_SUFFIXES
    s = _by_name(samples)
    assert s["gpu.0.fb_total_bytes"].value == H100_TOTAL
    assert s["gpu.0.fb_used_bytes"].value + s["gpu.0.fb_free_bytes"].value == H100_TOTAL
    assert s["gpu.0.power_limit_mw"].value == 700_000
    assert 0 < s["gpu.0.power_mw"].value <= 700_000
    assert s["gpu.0.lost"].value == 0.0


def test_values_vary_and_energy_counter_grows(opened: list[GpuCollector]) -> None:
    c = _open(opened, make_fake_nvml())
    runs = [_by_name(c.collect()) for _ in range(4)]
    energy = [r["gpu.3.energy_mj"].value for r in runs]
    assert energy == sorted(energy) and energy[0] < energy[-1]
    assert len({r["gpu.3.power_mw"].value for r in runs}) > 1


def test_labels(opened: list[GpuCollector]) -> None:
    c = _open(opened, make_fake_nvml(device_count=2))
    labels = c.labels()
    assert labels["gpu.count"] == "2"
    assert labels["driver_version"] == "550.90.07"
    assert labels["cuda_version"] == "12.4"
    assert labels["gpu.1.name"] == "NVIDIA H100 80GB HBM3"
    assert labels["gpu.1.uuid"].startswith("GPU-")
    assert labels["gpu.1.pci_bus_id"] == "00000000:28:00.0"
    for key in labels:
        validate_metric_name(key)
    labels["gpu.count"] = "99"
    assert c.labels()["gpu.count"] == "2", "labels() returns a copy"


# --- handles once, support cache, steady-state calls --------------------------


def test_init_and_handles_happen_once(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(mig_devices={5: 3})
    c = _open(opened, nv)
    for _ in range(5):
        c.collect()
    assert nv.calls["nvmlInit"] == 1
    assert nv.calls["nvmlDeviceGetHandleByIndex"] == 8
    assert nv.calls["nvmlDeviceGetMigDeviceHandleByIndex"] == 7  # one scan of the slots
    assert nv.calls["nvmlDeviceGetUUID"] == 8 + 3
    assert nv.calls["nvmlDeviceGetName"] == 8


def test_not_supported_is_dropped_and_logged_once(
    opened: list[GpuCollector], caplog: pytest.LogCaptureFixture
) -> None:
    nv = make_fake_nvml(
        not_supported={"nvmlDeviceGetFanSpeed": None, "nvmlDeviceGetRemappedRows": {2}}
    )
    c = _open(opened, nv)
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.gpu"):
        for _ in range(5):
            samples = c.collect()
    assert nv.calls["nvmlDeviceGetFanSpeed"] == 8, "asked once per device, never again"
    assert nv.device_calls[("nvmlDeviceGetRemappedRows", "2")] == 1
    assert nv.device_calls[("nvmlDeviceGetRemappedRows", "3")] == 5
    assert not any(s.name.endswith("fan_pct") for s in samples)
    assert "gpu.2.remapped_rows_corr" not in _by_name(samples)
    assert "gpu.3.remapped_rows_corr" in _by_name(samples)
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert sum("fan" in r.getMessage() for r in info) == 1
    assert sum("remapped_rows" in r.getMessage() for r in info) == 1
    assert "fan" not in c.fields_seen()["gpu.0"]


def test_steady_state_makes_only_the_needed_calls(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml()
    c = _open(opened, nv)
    c.collect()  # learns what is supported
    nv.calls.clear()
    for _ in range(3):
        c.collect()
    expected = {name: 3 * 8 * n for name, n in STEADY_CALLS_PER_DEVICE.items()}
    assert dict(nv.calls) == expected


def test_steady_state_calls_with_opt_in(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml()
    c = _open(opened, nv, opt_in={"pcie", "processes", "xid", "gpm"})
    c.collect()
    nv.calls.clear()
    c.collect()
    extra = {
        "nvmlDeviceGetPcieThroughput": 16,
        "nvmlDeviceGetComputeRunningProcesses_v3": 8,
        "nvmlGpmSampleGet": 8,
        "nvmlGpmMetricsGet": 8,
        "nvmlEventSetWait_v2": 1,  # one host-wide event set, drained until Timeout
    }
    assert dict(nv.calls) == {**{k: 8 * n for k, n in STEADY_CALLS_PER_DEVICE.items()}, **extra}


# --- fallbacks ----------------------------------------------------------------


def test_memory_info_falls_back_to_v1(
    opened: list[GpuCollector], caplog: pytest.LogCaptureFixture
) -> None:
    nv = make_fake_nvml(missing_functions={"nvmlDeviceGetMemoryInfo_v2"})
    c = _open(opened, nv)
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.gpu"):
        for _ in range(3):
            s = _by_name(c.collect())
    assert s["gpu.0.fb_total_bytes"].value == H100_TOTAL
    assert s["gpu.0.fb_used_bytes"].value >= H100_RESERVED  # v1 counts reserved memory as used
    assert nv.calls["nvmlDeviceGetMemoryInfo_v2"] == 8, "the newer call is tried once per device"
    assert nv.calls["nvmlDeviceGetMemoryInfo"] == 3 * 8
    assert sum("older" in r.getMessage() for r in caplog.records) == 1


def test_clock_event_reasons_fall_back_to_throttle_reasons(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(missing_functions={"nvmlDeviceGetCurrentClocksEventReasons"})
    c = _open(opened, nv)
    for _ in range(2):
        s = _by_name(c.collect())
    assert "gpu.4.clock_event_reasons" in s
    assert nv.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 8
    assert nv.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 16


def test_older_pynvml_without_a_binding_falls_back(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(missing_bindings={"nvmlDeviceGetTemperatureV"})
    c = _open(opened, nv)
    s = _by_name(c.collect())
    assert 31 <= s["gpu.0.temp_c"].value <= 78
    assert nv.calls["nvmlDeviceGetTemperature"] == 8


def test_no_call_left_drops_the_field(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(missing_functions={"nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"})
    c = _open(opened, nv)
    c.collect()
    s = _by_name(c.collect())
    assert "gpu.0.temp_c" not in s and "gpu.0.mem_temp_c" in s
    assert nv.calls["nvmlDeviceGetTemperature"] == 8


def test_transient_error_skips_one_sample_only(
    opened: list[GpuCollector], caplog: pytest.LogCaptureFixture
) -> None:
    nv = make_fake_nvml(device_count=1)
    real = nv.nvmlDeviceGetPowerUsage
    failures = iter([True, True, False, False])

    def flaky(handle: Any) -> int:
        if next(failures):
            raise NVMLError_Timeout()
        return int(real(handle))

    nv.nvmlDeviceGetPowerUsage = flaky
    c = _open(opened, nv)
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.gpu"):
        present = ["gpu.0.power_mw" in _by_name(c.collect()) for _ in range(4)]
    assert present == [False, False, True, True]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "power" in warnings[0].getMessage()


def test_answer_of_unexpected_shape_drops_only_that_field(
    opened: list[GpuCollector], caplog: pytest.LogCaptureFixture
) -> None:
    nv = make_fake_nvml(device_count=2)
    nv.nvmlDeviceGetPerformanceState = lambda h: "P0"
    nv.nvmlDeviceGetEncoderUtilization = lambda h: None
    c = _open(opened, nv)
    with caplog.at_level(logging.WARNING, logger="snapcloud.collectors.gpu"):
        c.collect()
        s = _by_name(c.collect())
    assert "gpu.0.pstate" not in s and "gpu.0.enc_util_pct" not in s
    assert "gpu.0.dec_util_pct" in s and "gpu.1.power_mw" in s
    assert sum("unexpectedly" in r.getMessage() for r in caplog.records) == 4  # 2 fields x 2 GPUs


def test_failure_after_init_shuts_nvml_down() -> None:
    nv = make_fake_nvml(device_count=1)

    def broken(h: Any) -> str:
        raise RuntimeError("bug")

    nv.nvmlDeviceGetName = broken
    with pytest.raises(RuntimeError):
        GpuCollector(nv)
    assert nv.state.initialized == 0


# --- lost devices ---------------------------------------------------------------


@pytest.mark.parametrize("error", ["GpuIsLost", "Unknown"])
def test_lost_device_is_marked_and_the_others_go_on(
    opened: list[GpuCollector], caplog: pytest.LogCaptureFixture, error: str
) -> None:
    nv = make_fake_nvml(lost_after={2: 40}, lost_error=error)
    c = _open(opened, nv)
    with caplog.at_level(logging.WARNING, logger="snapcloud.collectors.gpu"):
        for _ in range(4):
            samples = c.collect()
    s = _by_name(samples)
    assert s["gpu.2.lost"].value == 1.0
    assert _suffixes(samples, "gpu.2") == {"lost"}
    assert c.labels()["gpu.2.lost"] == "true"
    for i in (0, 1, 3, 7):
        assert _suffixes(samples, f"gpu.{i}") == DEFAULT_SUFFIXES
        assert s[f"gpu.{i}.lost"].value == 0.0
    calls_on_2 = nv.state.per_device[2]
    c.collect()
    assert nv.state.per_device[2] == calls_on_2, "no NVML call to a lost GPU"
    lost_lines = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost_lines) == 1 and "gpu.2" in lost_lines[0].getMessage()
    assert c.fields_seen()["gpu.2"] == ["lost"]


def test_device_lost_while_opening(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(device_count=3, lost_after={1: 0})
    c = _open(opened, nv)
    assert c.available and c.device_count == 3
    s = _by_name(c.collect())
    assert s["gpu.1.lost"].value == 1.0
    assert "gpu.0.power_mw" in s and "gpu.2.power_mw" in s


def test_lost_mig_device_marks_its_gpu_lost(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(device_count=2, mig_devices={1: 2}, lost_after={1: 60})
    c = _open(opened, nv)
    for _ in range(6):
        samples = c.collect()
    assert _by_name(samples)["gpu.1.lost"].value == 1.0
    assert not any(s.name.startswith("gpu.1.mig.") for s in samples)
    assert _by_name(samples)["gpu.0.lost"].value == 0.0


# --- no NVML ------------------------------------------------------------------


def test_missing_library_gives_one_clear_reason(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(library="missing")
    c = _open(opened, nv)
    assert not c.available
    assert c.reason == "NVML library not found: no GPU collector"
    assert c.collect() == [] and c.labels() == {}
    c.close()
    assert nv.calls["nvmlShutdown"] == 0


def test_driver_not_loaded(opened: list[GpuCollector]) -> None:
    c = _open(opened, make_fake_nvml(library="no_driver"))
    assert not c.available
    assert c.reason == "NVIDIA driver not loaded: no GPU collector"


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    c = GpuCollector()
    assert not c.available
    assert c.reason.startswith("NVML library not found") and "no GPU collector" in c.reason
    assert c.collect() == []
    c.close()


def test_no_devices(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(device_count=0)
    c = _open(opened, nv)
    assert not c.available and "0 devices" in c.reason
    assert nv.calls["nvmlShutdown"] == 1 and nv.state.initialized == 0


def test_this_host_without_nvml_is_not_an_error() -> None:
    """The real pynvml here: a clear reason when there is no GPU, samples when there is."""
    c = GpuCollector.open()
    try:
        if not c.available:
            assert c.reason.endswith("no GPU collector")
        else:  # pragma: no cover - only on a GPU host
            assert c.collect()
    finally:
        c.close()


# --- MIG ----------------------------------------------------------------------


def test_mig_devices_report_what_nvml_supports_there(
    opened: list[GpuCollector], caplog: pytest.LogCaptureFixture
) -> None:
    nv = make_fake_nvml(mig_devices={7: 2})
    c = _open(opened, nv)
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.gpu"):
        c.collect()
        samples = c.collect()
    s = _by_name(samples)
    for j in (0, 1):
        assert _suffixes(samples, f"gpu.7.mig.{j}") == {
            "fb_used_bytes",
            "fb_free_bytes",
            "fb_total_bytes",
        }
        assert s[f"gpu.7.mig.{j}.fb_total_bytes"].value == 10 * GIB
    assert not any(".mig." in x.name for x in samples if not x.name.startswith("gpu.7."))
    labels = c.labels()
    assert labels["gpu.7.mig_mode"] == "enabled"
    assert labels["gpu.7.mig.1.uuid"].startswith("MIG-")
    assert sum("util not supported" in r.getMessage() for r in caplog.records) == 1
    assert c.fields_seen()["gpu.7.mig.0"] == ["memory"]


# --- opt-in fields --------------------------------------------------------------


OPT_IN_CALLS = (
    "nvmlDeviceGetPcieThroughput",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlEventSetCreate",
    "nvmlEventSetWait_v2",
    "nvmlGpmQueryDeviceSupport",
    "nvmlGpmSampleGet",
)


def test_opt_in_fields_only_when_asked(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml()
    plain = _open(opened, nv).collect()
    assert not any(key in s.name for s in plain for key in ("pcie", "proc", "xid", "gpm")), (
        "no opt-in sample by default"
    )
    assert all(nv.calls[name] == 0 for name in OPT_IN_CALLS)

    nv = make_fake_nvml()
    full = _open(opened, nv, opt_in={"pcie", "processes", "xid", "gpm"}).collect()
    extra = _suffixes(full, "gpu.1") - DEFAULT_SUFFIXES
    assert extra == {
        "pcie_tx_kbps",
        "pcie_rx_kbps",
        "proc_count",
        "xid_count",
        "xid_last",
        "gpm.sm_util_pct",
        "gpm.sm_occupancy_pct",
        "gpm.tensor_active_pct",
        "gpm.dram_bw_util_pct",
    }


def test_one_opt_in_group_alone(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml()
    samples = _open(opened, nv, opt_in={"pcie"}).collect()
    assert _suffixes(samples, "gpu.0") - DEFAULT_SUFFIXES == {"pcie_tx_kbps", "pcie_rx_kbps"}
    assert nv.calls["nvmlGpmQueryDeviceSupport"] == 0 and nv.calls["nvmlEventSetCreate"] == 0


def test_unknown_opt_in_is_rejected() -> None:
    with pytest.raises(ValidationError, match="nvlink"):
        GpuCollector(make_fake_nvml(), opt_in={"nvlink"})


def test_processes(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(
        device_count=2,
        processes={0: [(100, 3 * GIB), (100, GIB), (200, None), (300, 512)], 1: []},
    )
    c = _open(opened, nv, opt_in={"processes"})
    s = _by_name(c.collect())
    assert s["gpu.0.proc_count"].value == 3
    assert s["gpu.0.proc.100.mem_bytes"].value == 4 * GIB, "one pid in two contexts is summed"
    assert s["gpu.0.proc.300.mem_bytes"].value == 512
    assert "gpu.0.proc.200.mem_bytes" not in s, "memory not available: count only"
    assert s["gpu.1.proc_count"].value == 0
    assert s["gpu.0.proc.100.mem_bytes"].unit == "bytes"


def test_processes_fall_back_to_v2(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(missing_functions={"nvmlDeviceGetComputeRunningProcesses_v3"})
    c = _open(opened, nv, opt_in={"processes"})
    c.collect()
    assert "gpu.0.proc.4242.mem_bytes" in _by_name(c.collect())
    assert nv.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 16


def test_xid_events_are_counted_per_gpu(
    opened: list[GpuCollector], caplog: pytest.LogCaptureFixture
) -> None:
    nv = make_fake_nvml(device_count=4)
    c = _open(opened, nv, opt_in={"xid"})
    first = _by_name(c.collect())
    assert first["gpu.3.xid_count"].value == 0 and first["gpu.3.xid_count"].kind == "counter"
    nv.inject_xid(3, 79)
    nv.inject_xid(3, 48)
    nv.inject_xid(1, 13)
    with caplog.at_level(logging.WARNING, logger="snapcloud.collectors.gpu"):
        s = _by_name(c.collect())
    assert s["gpu.3.xid_count"].value == 2 and s["gpu.3.xid_last"].value == 48
    assert s["gpu.1.xid_count"].value == 1 and s["gpu.1.xid_last"].value == 13
    assert s["gpu.0.xid_count"].value == 0
    assert sum("XID" in r.getMessage() for r in caplog.records) == 3
    assert _by_name(c.collect())["gpu.3.xid_count"].value == 2, "a counter, not a rate"
    c.close()
    assert nv.calls["nvmlEventSetFree"] == 1


def test_xid_unsupported(opened: list[GpuCollector], caplog: pytest.LogCaptureFixture) -> None:
    nv = make_fake_nvml(device_count=2, xid_supported=False)
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.gpu"):
        c = _open(opened, nv, opt_in={"xid"})
        samples = c.collect()
    assert not any("xid" in s.name for s in samples)
    assert nv.calls["nvmlEventSetFree"] == 1 and nv.calls["nvmlEventSetWait_v2"] == 0
    assert sum("XID" in r.getMessage() for r in caplog.records) == 1


def test_gpm_metrics_from_two_samples(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(device_count=2)
    c = _open(opened, nv, opt_in={"gpm"})
    for _ in range(3):
        s = _by_name(c.collect())
    for name in ("sm_util_pct", "sm_occupancy_pct", "tensor_active_pct", "dram_bw_util_pct"):
        sample = s[f"gpu.1.gpm.{name}"]
        assert 0.0 <= sample.value <= 100.0 and sample.unit == "%" and sample.kind == "gauge"
    assert nv.calls["nvmlGpmSampleAlloc"] == 4
    assert nv.calls["nvmlGpmSampleGet"] == 2 + 3 * 2  # one priming sample per GPU at open
    c.close()
    assert nv.state.gpm_live == 0, "GPM samples freed on close"


def test_gpm_unsupported_before_hopper(opened: list[GpuCollector]) -> None:
    nv = make_fake_nvml(device_count=2, gpm_supported=False)
    c = _open(opened, nv, opt_in={"gpm"})
    assert not any(".gpm." in s.name for s in c.collect())
    assert nv.calls["nvmlGpmSampleAlloc"] == 0


# --- closing and the command line ----------------------------------------------


def test_close_is_idempotent() -> None:
    nv = make_fake_nvml()
    c = GpuCollector(nv)
    c.collect()
    c.close()
    c.close()
    assert nv.calls["nvmlShutdown"] == 1 and nv.state.initialized == 0
    assert c.collect() == []


def test_context_manager_closes() -> None:
    nv = make_fake_nvml(device_count=1)
    with GpuCollector(nv) as c:
        assert c.collect()
    assert nv.calls["nvmlShutdown"] == 1


def test_main_reports_fields_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    nv = make_fake_nvml(mig_devices={1: 1})
    assert gpu_module.main(["--samples", "3", "--interval", "0"], nvml=nv) == 0
    out = capsys.readouterr().out
    assert "8 x NVIDIA H100 80GB HBM3" in out
    assert "driver 550.90.07, CUDA 12.4" in out
    assert "gpu.1.mig.0: 1 fields: memory" in out
    assert re.search(r"per sample: first [\d.]+ ms, then mean [\d.]+ ms", out)


def test_main_without_nvml_prints_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_module.main(["--samples", "1"], nvml=make_fake_nvml(library="missing")) == 1
    assert capsys.readouterr().out.strip() == "NVML library not found: no GPU collector"


def test_docs_list_every_field() -> None:
    text = DOCS.read_text(encoding="utf-8")
    fields = nvml_module._FIELDS
    for f in fields:
        for suffix, kind, unit in f.outputs:
            row = next((line for line in text.splitlines() if f"`{suffix}`" in line), None)
            assert row is not None, f"docs/GPU.md does not list {suffix}"
            assert kind in row and f"`{unit}`" in row, f"docs/GPU.md: {suffix} row: {row}"
    for extra in ("gpm.sm_util_pct", "xid_count", "xid_last", "proc.<pid>.mem_bytes", "lost"):
        assert f"`{extra}`" in text
