"""GpuCollector through the real pynvml over the fake NVML C library (fake_nvml.c).

Every value the fake gives differs per GPU and per field, so a field read from
the wrong id, scope, union member, clock, sensor, counter or GPU shows. The
expected values below come from nvml.h's ids, written out here, not from the
collector's own tables.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml
import pytest

from snapcloud.collectors import Collector, GpuCollector, Sample
from snapcloud.collectors import _nvml as nvml_tables
from snapcloud.collectors import gpu as gpu_module
from snapcloud.errors import ValidationError
from snapcloud.models import validate_metric_name
from tests.collectors.conftest import Clock
from tests.collectors.nvml_fake import (
    ARCH_AMPERE,
    DOUBLE,
    DRIVER_NOT_LOADED,
    FUNCTION_NOT_FOUND,
    GIB,
    GPU_IS_LOST,
    INVALID_ARGUMENT,
    MIB,
    NOT_SUPPORTED,
    NVLINK_LINKS,
    SINT,
    TIMEOUT,
    UINT_MAX,
    UNINITIALIZED,
    UNKNOWN,
    FakeNvml,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "GPU.md"
OpenGpu = Callable[..., GpuCollector]

# Default samples read through nvmlDeviceGetFieldValues: (field id, scope id), from nvml.h.
FIELDS = {
    "energy_mj": (83, 0),  # NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION
    "power_avg_mw": (185, 0),  # NVML_FI_DEV_POWER_AVERAGE, GPU-only scope
    "power_instant_mw": (186, 0),  # NVML_FI_DEV_POWER_INSTANT
    "power_limit_mw": (190, 0),  # NVML_FI_DEV_POWER_CURRENT_LIMIT
    "mem_temp_c": (82, 0),  # NVML_FI_DEV_MEMORY_TEMP
    "ecc_corrected": (3, 0),  # NVML_FI_DEV_ECC_SBE_VOL_TOTAL (volatile)
    "ecc_uncorrected": (4, 0),  # NVML_FI_DEV_ECC_DBE_VOL_TOTAL
    "remapped_rows_corr": (142, 0),  # NVML_FI_DEV_REMAPPED_COR
    "remapped_rows_unc": (143, 0),  # NVML_FI_DEV_REMAPPED_UNC
    "remapped_rows_pending": (144, 0),
    "remapped_rows_failure": (145, 0),
    "pcie_replay": (94, 0),  # NVML_FI_DEV_PCIE_REPLAY_COUNTER
    "violation_power_ns": (74, 0),  # NVML_FI_DEV_PERF_POLICY_POWER
    "violation_thermal_ns": (75, 0),
    "violation_sync_boost_ns": (76, 0),
    "violation_board_limit_ns": (77, 0),
    "violation_low_util_ns": (78, 0),
    "violation_reliability_ns": (79, 0),
    "violation_sw_thermal_ns": (269, 0),  # NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN
    "violation_hw_thermal_ns": (270, 0),
    "violation_hw_power_brake_ns": (271, 0),
    "nvlink_tx_kib": (138, UINT_MAX),  # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, all links
    "nvlink_rx_kib": (139, UINT_MAX),
    "nvlink_crc_flit_errors": (38, 0),
    "nvlink_crc_data_errors": (45, 0),
    "nvlink_replay_errors": (52, 0),
    "nvlink_recovery_errors": (59, 0),
}
# Default samples with a call of their own: the fake's value behind each.
CALLS = {
    "util_pct": "util_gpu",
    "mem_util_pct": "util_mem",
    "temp_c": "temp_gpu",
    "sm_clock_mhz": "clk_sm",
    "mem_clock_mhz": "clk_mem",
    "enc_util_pct": "enc",
    "dec_util_pct": "dec",
    "fb_used_bytes": "fb_used",
    "fb_total_bytes": "fb_total",
    "fb_reserved_bytes": "fb_reserved",
}
GPM = {  # NVML_GPM_METRIC_* ids
    "gpm.graphics_util_pct": 1,
    "gpm.sm_util_pct": 2,
    "gpm.sm_occupancy_pct": 3,
    "gpm.tensor_active_pct": 5,
    "gpm.dram_bw_util_pct": 10,
    "gpm.pcie_tx_mibps": 20,
    "gpm.pcie_rx_mibps": 21,
    "gpm.nvlink_rx_mibps": 60,
    "gpm.nvlink_tx_mibps": 61,
}
STATE = {
    "gfx_clock_mhz": "clk_graphics",
    "clock_event_reasons": "clock_reasons",
    "pstate": "pstate",
}
PCIE = {"pcie_tx_kbps": "pcie_tx", "pcie_rx_kbps": "pcie_rx"}
COUNTERS = {
    "energy_mj",
    "ecc_corrected",
    "ecc_uncorrected",
    "pcie_replay",
    "xid_count",
    *(k for k in FIELDS if k.startswith(("violation_", "nvlink_"))),
}
# The temperature call this pynvml makes (12.535 and 12.560 have no nvmlDeviceGetTemperatureV).
TEMPERATURE = (
    "nvmlDeviceGetTemperatureV"
    if hasattr(pynvml, "nvmlDeviceGetTemperatureV")
    else "nvmlDeviceGetTemperature"
)
# One steady sample of one H100 with the default set: (C function, calls).
STEADY_CALLS = {
    "nvmlDeviceGetFieldValues": 1,
    "nvmlDeviceGetMemoryInfo_v2": 1,
    "nvmlDeviceGetUtilizationRates": 1,
    TEMPERATURE: 1,
    "nvmlDeviceGetClockInfo": 2,
    "nvmlDeviceGetEncoderUtilization": 1,
    "nvmlDeviceGetDecoderUtilization": 1,
    "nvmlGpmSampleGet": 1,
}


def by_name(samples: list[Sample]) -> dict[str, Sample]:
    out = {s.name: s for s in samples if not s.event}
    assert len(out) == sum(not s.event for s in samples), "duplicate sample names"
    return out


def suffixes(samples: list[Sample], prefix: str) -> set[str]:
    return {
        s.name[len(prefix) + 1 :]
        for s in samples
        if re.match(rf"{re.escape(prefix)}\.[a-z]", s.name)
    }


def expected(fake: FakeNvml, i: int, *, gpm: bool = True) -> dict[str, float]:
    """Every default sample of GPU ``i`` and the value the fake gives it."""
    out = {name: fake.knob(i, key) for name, key in CALLS.items()}
    out["fb_free_bytes"] = (
        fake.knob(i, "fb_total") - fake.knob(i, "fb_reserved") - fake.knob(i, "fb_used")
    )
    for name, (fid, scope) in FIELDS.items():
        out[name] = fake.expected_field(i, fid, scope)
    if gpm:
        out.update({name: fake.gpm_value(i, metric) for name, metric in GPM.items()})
    return out


def steady(c: GpuCollector, clock: Clock, n: int = 2) -> list[Sample]:
    """``n`` collects one second apart (GPM needs two); the last one's samples."""
    samples: list[Sample] = []
    for _ in range(n):
        samples = c.collect()
        clock.advance(1.0)
    return samples


# --- the values, through the real binding ---------------------------------------------


def test_every_default_field_of_every_gpu_has_its_own_value(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    c = open_gpu()
    samples = steady(c, clock)
    s = by_name(samples)
    for i in range(8):
        want = expected(nvml, i)
        got = {k: s[f"gpu.{i}.{k}"].value for k in want if f"gpu.{i}.{k}" in s}
        assert got == want, f"gpu.{i}"
        assert suffixes(samples, f"gpu.{i}") == {*want, "lost", "xid_count"}
        assert s[f"gpu.{i}.lost"].value == 0.0 and s[f"gpu.{i}.xid_count"].value == 0.0
    assert c.available and c.reason == "" and isinstance(c, Collector)


def test_kinds_units_and_names(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    c = open_gpu(opt_in={"pcie", "processes", "state", "nvlink_links"})
    nvml.proc_add(0, 4242, GIB)
    for s in steady(c, clock):
        assert validate_metric_name(s.name) == s.name and isinstance(s.value, float)
        field = s.name.split(".", 2)[2]
        want = "counter" if field in COUNTERS or field.startswith("nvlink.") else "gauge"
        assert s.kind == want, s.name
    s = by_name(c.collect())
    units = {
        "power_avg_mw": "mW",
        "energy_mj": "mJ",
        "temp_c": "C",
        "fb_reserved_bytes": "bytes",
        "violation_power_ns": "ns",
        "nvlink_tx_kib": "KiB",
        "nvlink.17.rx_kib": "KiB",
        "gpm.pcie_tx_mibps": "MiB/s",
        "pcie_tx_kbps": "KB/s",
        "clock_event_reasons": "bitmask",
        "proc.4242.mem_bytes": "bytes",
    }
    for field, unit in units.items():
        assert s[f"gpu.0.{field}"].unit == unit, field


def test_opt_in_values(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    c = open_gpu(opt_in={"pcie", "state", "nvlink_links"})
    s = by_name(steady(c, clock))
    for i in (0, 5):
        for name, key in {**STATE, **PCIE}.items():
            assert s[f"gpu.{i}.{name}"].value == nvml.knob(i, key), (i, name)
        for link in (0, 9, NVLINK_LINKS - 1):
            for name, fid in (
                ("tx_kib", 138),
                ("rx_kib", 139),
                ("replay_errors", 161),
                ("recovery_errors", 162),
                ("crc_errors", 163),
            ):
                want = nvml.expected_field(i, fid, link)
                assert s[f"gpu.{i}.nvlink.{link}.{name}"].value == want, (i, link, name)
    assert "gpu.0.nvlink.18.tx_kib" not in s
    assert "gpu.0.fan_pct" not in s  # NotSupported on an H100 SXM (the fake's default)


def test_field_values_are_read_as_their_value_type_says(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    # The rest of the nvmlValue_t union is garbage (0xA5): only the right member reads right.
    nvml.field(3, 82, 0, 47.5, DOUBLE)
    nvml.field(3, 269, 0, -5, SINT)
    c = open_gpu()
    s = by_name(steady(c, clock))
    assert s["gpu.3.mem_temp_c"].value == 47.5
    assert s["gpu.3.violation_sw_thermal_ns"].value == -5.0


def test_one_field_values_call_per_gpu_carries_every_field_and_keeps_latency(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    c = open_gpu()
    steady(c, clock)
    before = nvml.calls("nvmlDeviceGetFieldValues", 4)
    entries = nvml.calls("field_value", 4)
    c.collect()
    assert nvml.calls("nvmlDeviceGetFieldValues", 4) - before == 1
    assert nvml.calls("field_value", 4) - entries == len(FIELDS)  # retired pages dropped: Ampere+
    latency = c.field_latency_us()
    assert latency["remapped_rows_corr"][1] == 10 + 142 % 50 + 7  # the largest NVML reported
    assert latency["power_avg_mw"][0] == pytest.approx(10 + 185 % 50 + 3.5)  # mean over 8 GPUs


def test_steady_sample_call_count_per_gpu(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    c = open_gpu()
    steady(c, clock)
    before = {i: nvml.calls_by_function(i) for i in range(8)}
    host_before = nvml.calls_by_function(-1)
    c.collect()
    for i in range(8):
        after = nvml.calls_by_function(i)
        made = {k: v - before[i].get(k, 0) for k, v in after.items() if v != before[i].get(k, 0)}
        assert made == STEADY_CALLS, f"gpu.{i}"
    host = {k: v - host_before.get(k, 0) for k, v in nvml.calls_by_function(-1).items()}
    # nvmlGpmMetricsGet takes no device: one per GPU; one event wait per host.
    assert {k: v for k, v in host.items() if v} == {
        "nvmlGpmMetricsGet": 8,
        "nvmlEventSetWait_v2": 1,
    }


def test_opt_in_groups_only_when_asked(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    c = open_gpu()
    plain = suffixes(steady(c, clock), "gpu.1")
    assert not plain & {*STATE, *PCIE, "proc_count"} and not any("nvlink." in x for x in plain)
    for fn in (
        "nvmlDeviceGetPcieThroughput",
        "nvmlDeviceGetPerformanceState",
        "nvmlDeviceGetComputeRunningProcesses_v3",
    ):
        assert nvml.calls(fn) == 0, fn
    with pytest.raises(ValidationError, match="nvlink"):
        GpuCollector(pynvml, opt_in={"nvlink"})
    old = open_gpu(opt_in={"xid", "gpm"})  # opt-in names of earlier versions: now default
    assert old.opt_in == frozenset()


def test_labels(nvml: FakeNvml, open_gpu: OpenGpu) -> None:
    c = open_gpu()
    labels = c.labels()
    assert labels["gpu.count"] == "8" and labels["driver_version"] == "550.90.07"
    assert labels["cuda_version"] == "12.4"
    assert labels["gpu.1.name"] == "NVIDIA H100 80GB HBM3"
    assert labels["gpu.1.uuid"] == "GPU-1f2e3d4c-0001-4a5b-8c7d-00000000beef"
    assert labels["gpu.1.pci_bus_id"] == "00000000:28:00.0"
    assert labels["gpu.1.arch"] == "hopper"
    for key in labels:
        validate_metric_name(key)
    labels["gpu.count"] = "99"
    assert c.labels()["gpu.count"] == "8", "labels() returns a copy"


# --- what NVML's answers do -------------------------------------------------------------


def test_not_supported_is_dropped_logged_once_and_not_asked_again(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, caplog: pytest.LogCaptureFixture
) -> None:
    nvml.fail("nvmlDeviceGetDecoderUtilization", NOT_SUPPORTED, gpu=2)
    nvml.field_fails(5, 142, 0, NOT_SUPPORTED)
    c = open_gpu()
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.gpu"):
        for _ in range(4):
            s = by_name(c.collect())
            clock.advance(1)
    assert nvml.calls("nvmlDeviceGetDecoderUtilization", 2) == 1
    assert nvml.calls("nvmlDeviceGetDecoderUtilization", 3) == 4
    assert "gpu.2.dec_util_pct" not in s and "gpu.3.dec_util_pct" in s
    assert "gpu.5.remapped_rows_corr" not in s and "gpu.5.remapped_rows_unc" in s
    lines = [r.getMessage() for r in caplog.records]
    assert sum("dec_util" in m and "not supported" in m for m in lines) == 1
    assert "remapped_rows_corr" in c.unsupported()["gpu.5"]


def test_unknown_error_of_one_field_skips_that_sample_only(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, caplog: pytest.LogCaptureFixture
) -> None:
    """A transient 999 from one reading is N/A for that sample, never a lost GPU."""
    c = open_gpu()
    steady(c, clock)
    nvml.fail(TEMPERATURE, UNKNOWN, gpu=1, times=1)
    nvml.field_fails(1, 185, 0, UNKNOWN)
    with caplog.at_level(logging.WARNING, logger="snapcloud.collectors.gpu"):
        s = by_name(c.collect())
    assert "gpu.1.temp_c" not in s and "gpu.1.power_avg_mw" not in s
    assert s["gpu.1.sm_clock_mhz"].value == nvml.knob(1, "clk_sm"), "the other readings go on"
    assert s["gpu.1.lost"].value == 0.0 and "gpu.1.lost" not in c.labels()
    nvml.field(1, 185, 0, 301_010, 1)  # answers again
    clock.advance(5)
    s = by_name(c.collect())
    assert s["gpu.1.temp_c"].value == nvml.knob(1, "temp_gpu")
    assert s["gpu.1.power_avg_mw"].value == 301_010
    assert nvml.calls("nvmlDeviceGetHandleByIndex_v2", 1) == 2, "its handle was checked once"
    assert any("temp" in r.getMessage() for r in caplog.records)


def test_gpu_is_lost_from_a_reading_checks_the_handle(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    c = open_gpu()
    steady(c, clock)
    nvml.fail("nvmlDeviceGetMemoryInfo_v2", GPU_IS_LOST, gpu=6, times=1)
    s = by_name(c.collect())
    assert "gpu.6.util_pct" not in s, "the rest of that GPU's sample is skipped"
    assert "gpu.7.util_pct" in s
    clock.advance(5)
    s = by_name(c.collect())
    assert s["gpu.6.lost"].value == 0.0 and s["gpu.6.util_pct"].value == nvml.knob(6, "util_gpu")


@pytest.mark.parametrize("code", [GPU_IS_LOST, UNKNOWN])
def test_gpu_whose_handle_is_refused_is_lost_then_found_again(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    c = open_gpu(recheck_s=30)
    steady(c, clock)
    nvml.set(2, "lost", code)  # every call to GPU 2, its handle included, answers `code`
    with caplog.at_level(logging.WARNING, logger="snapcloud.collectors.gpu"):
        c.collect()
        clock.advance(5)
        samples = c.collect()
    s = by_name(samples)
    assert s["gpu.2.lost"].value == 1.0 and c.labels()["gpu.2.lost"] == "true"
    assert suffixes(samples, "gpu.2") == {"lost", "xid_count"}
    assert c.labels()["gpu.2.uuid"].startswith("GPU-"), "a lost GPU keeps its identity"
    for i in (0, 3, 7):
        assert s[f"gpu.{i}.lost"].value == 0.0 and f"gpu.{i}.temp_c" in s
    calls = nvml.calls("", 2)
    clock.advance(1)
    c.collect()
    assert nvml.calls("", 2) == calls, "no NVML call to a lost GPU between re-inits"
    assert sum("GPU lost" in r.getMessage() for r in caplog.records) == 1
    nvml.set(2, "lost", 0)  # reset and back
    clock.advance(30)
    s = by_name(steady(c, clock))
    assert s["gpu.2.lost"].value == 0.0 and "gpu.2.lost" not in c.labels()
    assert s["gpu.2.temp_c"].value == nvml.knob(2, "temp_gpu")
    assert nvml.calls("nvmlInitWithFlags") == 2 and nvml.initialized == 1, "NVML re-initialised"


def test_invalid_argument_is_an_error_never_not_supported(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, caplog: pytest.LogCaptureFixture
) -> None:
    c = open_gpu()
    steady(c, clock)
    nvml.fail("nvmlDeviceGetClockInfo", INVALID_ARGUMENT, gpu=4, times=2)
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.gpu"):
        s1 = by_name(c.collect())
        clock.advance(1)
        c.collect()
        clock.advance(5)
        s3 = by_name(c.collect())
    assert "gpu.4.sm_clock_mhz" not in s1
    assert s3["gpu.4.sm_clock_mhz"].value == nvml.knob(4, "clk_sm"), "asked again, not dropped"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and all("invalid argument" in r.getMessage() for r in errors)
    assert not any(
        "not supported" in r.getMessage() and "clock" in r.getMessage() for r in caplog.records
    )
    assert "sm_clock" not in c.unsupported().get("gpu.4", [])


def test_field_id_this_driver_does_not_know_is_an_error_and_left_out(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, caplog: pytest.LogCaptureFixture
) -> None:
    nvml.set(-1, "fi_max", 200)  # an older driver: no field id from 200 on
    c = open_gpu()
    with caplog.at_level(logging.ERROR, logger="snapcloud.collectors.gpu"):
        s = by_name(steady(c, clock, 3))
    assert "gpu.0.violation_hw_thermal_ns" not in s and "gpu.0.violation_power_ns" in s
    assert any("violation_hw_thermal_ns" in r.getMessage() for r in caplog.records)
    assert "violation_hw_thermal_ns" not in c.fields_seen()["gpu.0"]


def test_older_call_when_the_driver_lacks_the_newer(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    nvml.install(pynvml, hide={"nvmlDeviceGetTemperatureV", "nvmlDeviceGetMemoryInfo_v2"})
    c = open_gpu()
    s = by_name(steady(c, clock, 3))
    assert s["gpu.3.temp_c"].value == nvml.knob(3, "temp_gpu")
    used_v1 = nvml.knob(3, "fb_used") + nvml.knob(3, "fb_reserved")  # v1 counts reserved as used
    assert s["gpu.3.fb_used_bytes"].value == used_v1
    assert "gpu.3.fb_reserved_bytes" not in s
    assert nvml.calls("nvmlDeviceGetTemperature", 3) == 3


def test_struct_version_mismatch_falls_back(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    nvml.fail("nvmlDeviceGetMemoryInfo_v2", 25, gpu=0)  # NVML_ERROR_ARGUMENT_VERSION_MISMATCH
    c = open_gpu()
    s = by_name(steady(c, clock))
    assert s["gpu.0.fb_total_bytes"].value == nvml.knob(0, "fb_total")
    assert nvml.calls("nvmlDeviceGetMemoryInfo_v2", 0) == 1 and "gpu.1.fb_reserved_bytes" in s


def test_older_pynvml_without_a_binding_falls_back(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(pynvml, "nvmlDeviceGetTemperatureV", raising=False)
    c = open_gpu()
    s = by_name(steady(c, clock))
    assert s["gpu.0.temp_c"].value == nvml.knob(0, "temp_gpu")


def test_no_call_left_drops_the_reading(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    nvml.install(pynvml, hide={"nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"})
    c = open_gpu()
    s = by_name(steady(c, clock, 3))
    assert "gpu.0.temp_c" not in s and "gpu.0.mem_temp_c" in s
    assert "temp" not in c.fields_seen()["gpu.0"]


def test_timeout_skips_one_sample_and_warns_once(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, caplog: pytest.LogCaptureFixture
) -> None:
    c = open_gpu()
    steady(c, clock)
    nvml.fail("nvmlDeviceGetUtilizationRates", TIMEOUT, gpu=0, times=2)
    with caplog.at_level(logging.WARNING, logger="snapcloud.collectors.gpu"):
        present = ["gpu.0.util_pct" in by_name(c.collect()) for _ in range(3)]
    assert present == [False, False, True]
    assert sum("util" in r.getMessage() for r in caplog.records) == 1


def test_nvml_losing_its_driver_is_reinitialised(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    c = open_gpu()
    steady(c, clock)
    nvml.fail("nvmlDeviceGetFieldValues", UNINITIALIZED, times=1)
    c.collect()
    s = by_name(steady(c, clock))
    assert nvml.calls("nvmlInitWithFlags") == 2 and nvml.initialized == 1
    assert s["gpu.0.energy_mj"].value == nvml.expected_field(0, 83)


def test_answer_of_unexpected_shape_drops_only_that_reading(
    nvml: FakeNvml,
    clock: Clock,
    open_gpu: OpenGpu,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(pynvml, "nvmlDeviceGetEncoderUtilization", lambda h: None)
    c = open_gpu()
    with caplog.at_level(logging.WARNING, logger="snapcloud.collectors.gpu"):
        s = by_name(steady(c, clock))
    assert "gpu.0.enc_util_pct" not in s and "gpu.0.dec_util_pct" in s
    assert sum("unexpectedly" in r.getMessage() for r in caplog.records) == 8


# --- power, memory ----------------------------------------------------------------------


def test_power_average_and_instant_are_named(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    nvml.field_fails(1, 185, 0, NOT_SUPPORTED)  # GA100: no 1 s average
    c = open_gpu()
    s = by_name(steady(c, clock))
    assert s["gpu.0.power_avg_mw"].value == nvml.expected_field(0, 185)
    assert s["gpu.0.power_instant_mw"].value == nvml.expected_field(0, 186)
    assert "gpu.1.power_avg_mw" not in s
    assert s["gpu.1.power_instant_mw"].value == nvml.expected_field(1, 186)
    assert nvml.calls("nvmlDeviceGetPowerUsage") == 0


@pytest.mark.parametrize(
    ("arch", "pci_device", "name"),
    [
        (ARCH_AMPERE, 0x20B2, "power_instant_mw"),  # A100 80GB: GA100, instantaneous
        (ARCH_AMPERE, 0x2236, "power_avg_mw"),  # A10: GA102, 1 s average
        (6, 0x1EB8, "power_instant_mw"),  # T4: Turing
        (9, 0x2330, "power_avg_mw"),  # H100
    ],
)
def test_power_usage_fallback_is_named_for_what_it_measures(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, arch: int, pci_device: int, name: str
) -> None:
    nvml.set(0, "arch", arch)
    nvml.set(0, "pci_devid", (pci_device << 16) | 0x10DE)
    nvml.set(-1, "fi_max", 185)  # a driver from before the power fields
    c = open_gpu()
    s = by_name(steady(c, clock, 3))
    other = ({"power_avg_mw", "power_instant_mw"} - {name}).pop()
    assert s[f"gpu.0.{name}"].value == nvml.knob(0, "power_usage")
    assert f"gpu.0.{other}" not in s
    assert s["gpu.0.power_limit_mw"].value == nvml.knob(0, "power_limit")  # enforced limit


def test_fb_reserved_is_reported(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    c = open_gpu()
    s = by_name(steady(c, clock))
    for i in range(8):
        assert s[f"gpu.{i}.fb_reserved_bytes"].value == (512 + i) * MIB
        total = s[f"gpu.{i}.fb_used_bytes"].value + s[f"gpu.{i}.fb_free_bytes"].value
        assert total + s[f"gpu.{i}.fb_reserved_bytes"].value == s[f"gpu.{i}.fb_total_bytes"].value


# --- GPM -----------------------------------------------------------------------------------


def test_gpm_samples_are_100_ms_apart_from_the_first_collect(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    c = open_gpu()
    assert nvml.calls("nvmlGpmSampleGet") == 0, "no GPM sample at open"
    first = by_name(c.collect())
    assert not any(".gpm." in k for k in first), "one sample: nothing to report yet"
    clock.advance(0.05)
    assert not any(".gpm." in k for k in by_name(c.collect()))
    assert nvml.calls("nvmlGpmSampleGet") == 8, "none taken 50 ms after the last"
    clock.advance(0.06)
    s = by_name(c.collect())
    assert s["gpu.3.gpm.sm_util_pct"].value == nvml.gpm_value(3, 2)
    for _ in range(5):
        clock.advance(0.03)
        c.collect()
    assert nvml.calls("gpm_short_pair") == 0, "never two samples under 100 ms apart"
    assert nvml.calls("nvmlGpmSampleGet") == 8 * 3


def test_gpm_recovers_after_an_error(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    c = open_gpu()
    steady(c, clock)
    nvml.fail("nvmlGpmSampleGet", UNKNOWN, gpu=2, times=1)
    assert "gpu.2.gpm.sm_util_pct" not in by_name(c.collect())
    clock.advance(1)
    assert "gpu.2.gpm.sm_util_pct" not in by_name(c.collect()), "starts over: one sample"
    clock.advance(1)
    s = by_name(c.collect())
    assert s["gpu.2.gpm.sm_util_pct"].value == nvml.gpm_value(2, 2)
    assert s["gpu.2.gpm.pcie_rx_mibps"].value == nvml.gpm_value(2, 21)
    assert "gpm" in c.fields_seen()["gpu.2"]


def test_gpm_metric_not_supported_is_dropped_alone(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    nvml.gpm(0, -1, 60, 0, ret=NOT_SUPPORTED)
    c = open_gpu()
    s = by_name(steady(c, clock, 3))
    assert "gpu.0.gpm.nvlink_rx_mibps" not in s and "gpu.0.gpm.nvlink_tx_mibps" in s


def test_gpm_with_no_metric_supported_is_dropped(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, caplog: pytest.LogCaptureFixture
) -> None:
    nvml.mig_add(7, 1, 0)  # a GPU instance NVML answers no GPM metric for
    c = open_gpu()
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.gpu"):
        steady(c, clock, 4)
    assert c.fields_seen()["gpu.7.mig.1"] == ["memory"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert nvml.live_gpm_samples == 2 * 7, "its sample buffers freed"


def test_no_gpm_before_hopper(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    for i in range(8):
        nvml.set(i, "gpm", 0)
    c = open_gpu()
    assert not any(".gpm." in s.name for s in steady(c, clock))
    assert nvml.calls("nvmlGpmSampleAlloc") == 0


# --- MIG ------------------------------------------------------------------------------------


def mig_layout(nvml: FakeNvml) -> None:
    """GPU 7 in MIG mode: GPU instance 1 (two compute instances) and GPU instance 2."""
    nvml.mig_add(7, 1, 0, "3g.40gb", total=40 * GIB)
    nvml.mig_add(7, 1, 1, "3g.40gb", total=40 * GIB)
    nvml.mig_add(7, 2, 0, "1g.10gb", total=10 * GIB)
    for gi in (1, 2):
        for metric, value in ((1, 11.0 + gi), (2, 21.0 + gi), (5, 51.0 + gi)):
            nvml.gpm(7, gi, metric, value)


def test_mig_instances_report_memory_and_gpm_activity_by_their_ids(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    mig_layout(nvml)
    c = open_gpu()
    samples = steady(c, clock)
    s = by_name(samples)
    assert s["gpu.7.mig.1.fb_total_bytes"].value == 40 * GIB
    assert s["gpu.7.mig.1.fb_used_bytes"].value == 101 * MIB
    assert s["gpu.7.mig.2.fb_total_bytes"].value == 10 * GIB
    assert s["gpu.7.mig.1.gpm.graphics_util_pct"].value == 12.0
    assert s["gpu.7.mig.2.gpm.sm_util_pct"].value == 23.0
    assert s["gpu.7.mig.2.gpm.tensor_active_pct"].value == 53.0
    assert "gpu.7.mig.1.gpm.pcie_tx_mibps" not in s  # not per GPU instance
    assert "gpu.7.util_pct" not in s, "no utilisation on a MIG-enabled GPU (NVML)"
    assert nvml.calls("nvmlDeviceGetUtilizationRates", 7) == 0
    assert "gpu.7.gpm.sm_util_pct" not in s and s["gpu.7.power_avg_mw"].value > 0
    labels = c.labels()
    assert labels["gpu.7.mig_mode"] == "enabled"
    assert labels["gpu.7.mig.1.name"] == "NVIDIA H100 80GB HBM3 MIG 3g.40gb"
    assert labels["gpu.7.mig.1.ci.1.uuid"].startswith("MIG-")
    assert labels["gpu.7.mig.2.ci.0.uuid"] != labels["gpu.7.mig.1.ci.0.uuid"]
    assert "gpu.6.mig_mode" not in labels
    assert c.fields_seen()["gpu.7.mig.1"] == ["memory", "gpm"]


def test_mig_layout_change_is_found_and_reaches_the_labels(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, caplog: pytest.LogCaptureFixture
) -> None:
    mig_layout(nvml)
    c = open_gpu(recheck_s=60)
    steady(c, clock)
    nvml.mig_destroy(7, 1)  # its handles go stale: NVML answers InvalidArgument
    nvml.mig_add(7, 3, 0, "2g.20gb", total=20 * GIB)
    nvml.gpm(7, 3, 2, 33.0)
    with caplog.at_level(logging.INFO, logger="snapcloud.collectors.gpu"):
        stale = by_name(c.collect())
        clock.advance(5)
        samples = steady(c, clock)
    s = by_name(samples)
    assert "gpu.7.mig.1.fb_total_bytes" not in stale
    assert "gpu.7.mig.1.fb_total_bytes" not in s
    assert s["gpu.7.mig.3.fb_total_bytes"].value == 20 * GIB
    assert s["gpu.7.mig.3.gpm.sm_util_pct"].value == 33.0
    assert s["gpu.7.mig.2.fb_total_bytes"].value == 10 * GIB
    labels = c.labels()
    assert "gpu.7.mig.1.name" not in labels and "gpu.7.mig.1.ci.0.uuid" not in labels
    assert labels["gpu.7.mig.3.name"].endswith("2g.20gb")
    assert any(
        r.levelno == logging.ERROR and "invalid argument" in r.getMessage() for r in caplog.records
    )
    assert not any(
        "not supported" in r.getMessage() and "mig.1" in r.getMessage() for r in caplog.records
    )


def test_mig_enabled_later_is_found_on_schedule(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    c = open_gpu(recheck_s=60)
    steady(c, clock)
    mig_layout(nvml)
    clock.advance(60)
    s = by_name(steady(c, clock))
    assert s["gpu.7.mig.2.fb_total_bytes"].value == 10 * GIB
    assert c.labels()["gpu.7.mig_mode"] == "enabled"


def test_a_replaced_gpu_and_a_new_driver_reach_the_labels(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    c = open_gpu(recheck_s=60)
    steady(c, clock)
    nvml.set_str(4, "uuid", "GPU-00000000-new0-4a5b-8c7d-00000000cafe")
    nvml.set_str(-1, "driver", "570.86.15")
    clock.advance(30)
    c.collect()
    assert c.labels()["gpu.4.uuid"].startswith("GPU-1f2e"), "not before the re-enumeration"
    clock.advance(30)
    s = by_name(steady(c, clock))
    labels = c.labels()
    assert labels["gpu.4.uuid"] == "GPU-00000000-new0-4a5b-8c7d-00000000cafe"
    assert labels["driver_version"] == "570.86.15"
    assert labels["gpu.4.name"] == "NVIDIA H100 80GB HBM3", "re-opened with all its facts"
    assert s["gpu.4.gpm.sm_util_pct"].value == nvml.gpm_value(4, 2)


# --- processes --------------------------------------------------------------------------------


def test_processes_compute_and_graphics(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    nvml.proc_add(0, 100, 3 * GIB)
    nvml.proc_add(0, 100, 3 * GIB, graphics=True)  # C+G: one process, counted once
    nvml.proc_add(0, 200, None)  # NVML cannot tell its memory
    nvml.proc_add(0, 300, 512, graphics=True)
    nvml.putil_add(0, 100, 1_000, 87, 41)
    nvml.putil_add(0, 100, 2_000, 88, 42)
    c = open_gpu(opt_in={"processes"})
    s = by_name(c.collect())
    assert s["gpu.0.proc_count"].value == 3
    assert s["gpu.0.proc.100.mem_bytes"].value == 3 * GIB
    assert s["gpu.0.proc.300.mem_bytes"].value == 512
    assert "gpu.0.proc.200.mem_bytes" not in s
    assert (
        s["gpu.0.proc.100.sm_util_pct"].value == 88 and s["gpu.0.proc.100.mem_util_pct"].value == 42
    )
    assert s["gpu.1.proc_count"].value == 0
    nvml.putil_add(0, 100, 1_500, 1, 1)  # older than what was seen: not reported again
    assert "gpu.0.proc.100.sm_util_pct" not in by_name(c.collect())


def test_process_query_grows_its_buffer_on_insufficient_size(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    for pid in range(1_000, 1_040):
        nvml.proc_add(2, pid, pid * MIB)
    c = open_gpu(opt_in={"processes"})
    s = by_name(c.collect())
    assert s["gpu.2.proc_count"].value == 40
    assert s["gpu.2.proc.1039.mem_bytes"].value == 1_039 * MIB
    assert nvml.calls("nvmlDeviceGetComputeRunningProcesses_v3", 2) == 2  # too small, then fill
    assert nvml.calls("process_size_query", 2) == 1
    c.collect()
    assert nvml.calls("nvmlDeviceGetComputeRunningProcesses_v3", 2) == 3, "one call once grown"


def test_processes_on_drivers_535_43_to_535_85_use_their_struct(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    nvml.set_str(-1, "driver", "535.54.03")
    nvml.set(-1, "proc_struct_v3", 32)  # what those drivers wrote from the _v3 calls
    for pid, mem in ((4242, 30 * GIB), (4243, 2 * GIB), (4244, 5 * GIB)):
        nvml.proc_add(0, pid, mem)
    c = open_gpu(opt_in={"processes"})
    s = by_name(c.collect())
    assert s["gpu.0.proc_count"].value == 3
    assert [s[f"gpu.0.proc.{p}.mem_bytes"].value for p in (4242, 4243, 4244)] == [
        30 * GIB,
        2 * GIB,
        5 * GIB,
    ]


def test_processes_fall_back_to_v2(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    nvml.install(
        pynvml,
        hide={
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetGraphicsRunningProcesses_v3",
        },
    )
    nvml.proc_add(1, 4242, GIB)
    c = open_gpu(opt_in={"processes"})
    c.collect()
    assert by_name(c.collect())["gpu.1.proc.4242.mem_bytes"].value == GIB
    assert nvml.calls("nvmlDeviceGetComputeRunningProcesses_v2", 1) == 2


def test_processes_on_a_mig_gpu_as_non_root(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu
) -> None:
    mig_layout(nvml)
    nvml.proc_add(7, 500, 4 * GIB, gi=1, ci=0)
    nvml.proc_add(7, 501, 1 * GIB, gi=2, ci=0)
    c = open_gpu(opt_in={"processes"})
    for _ in range(2):
        s = by_name(c.collect())
    assert s["gpu.7.proc_count"].value == 2
    assert s["gpu.7.proc.500.mem_bytes"].value == 4 * GIB
    assert s["gpu.7.proc.501.mem_bytes"].value == 1 * GIB
    # Asked per MIG device (3), never the GPU itself (NoPermission unless root).
    assert nvml.calls("nvmlDeviceGetComputeRunningProcesses_v3", 7) == 2 * 3


# --- XID events --------------------------------------------------------------------------------


def test_every_xid_event_is_a_sample_with_its_code(
    nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu, caplog: pytest.LogCaptureFixture
) -> None:
    c = open_gpu()
    assert by_name(c.collect())["gpu.3.xid_count"].kind == "counter"
    for code in (79, 48, 79):
        nvml.xid(3, code)
    nvml.xid(1, 13, gi=2, ci=0)
    with caplog.at_level(logging.WARNING, logger="snapcloud.collectors.gpu"):
        samples = c.collect()
    events = [(s.name, s.value) for s in samples if s.event]
    assert events == [
        ("gpu.3.xid", 79.0),
        ("gpu.3.xid", 48.0),
        ("gpu.3.xid", 79.0),
        ("gpu.1.xid", 13.0),
    ]
    assert all(s.unit == "xid" and s.kind == "gauge" for s in samples if s.event)
    s = by_name(samples)
    assert s["gpu.3.xid_count"].value == 3 and s["gpu.1.xid_count"].value == 1
    assert s["gpu.0.xid_count"].value == 0
    assert sum("XID" in r.getMessage() for r in caplog.records) == 4
    assert not [x for x in c.collect() if x.event], "each event once"


def test_xid_unsupported(nvml: FakeNvml, clock: Clock, open_gpu: OpenGpu) -> None:
    for i in range(8):
        nvml.set(i, "events_supported", 0x7)
    c = open_gpu()
    assert not any("xid" in s.name for s in steady(c, clock))
    assert nvml.live_event_sets == 0 and nvml.calls("nvmlEventSetWait_v2") == 0


# --- no NVML ---------------------------------------------------------------------------------


def test_driver_not_loaded(nvml: FakeNvml, open_gpu: OpenGpu) -> None:
    nvml.set(-1, "init_ret", DRIVER_NOT_LOADED)
    c = open_gpu()
    assert not c.available and c.reason == "NVIDIA driver not loaded: no GPU collector"
    assert c.collect() == [] and c.labels() == {}


def test_no_devices(nvml: FakeNvml, open_gpu: OpenGpu) -> None:
    nvml.set(-1, "device_count", 0)
    c = open_gpu()
    assert not c.available and "0 devices" in c.reason
    assert nvml.initialized == 0


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)
    c = GpuCollector()
    assert not c.available and c.reason.startswith("NVML library not found")
    assert c.collect() == []
    c.close()


def test_this_host_without_nvml_is_not_an_error() -> None:
    """The real pynvml and its real library lookup here: one clear reason when there is no GPU."""
    c = GpuCollector.open()
    try:
        if not c.available:
            assert c.reason.endswith("no GPU collector")
        else:  # pragma: no cover - only on a GPU host
            assert c.collect()
    finally:
        c.close()


def test_failure_after_init_shuts_nvml_down(
    nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(h: Any) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", broken)
    with pytest.raises(RuntimeError):
        GpuCollector(pynvml)
    assert nvml.initialized == 0


# --- closing, the command line, the tables --------------------------------------------------


def test_close_frees_everything_once(nvml: FakeNvml, clock: Clock) -> None:
    mig_layout(nvml)
    c = GpuCollector(pynvml, clock=clock)
    steady(c, clock)
    assert nvml.live_gpm_samples == 2 * 7 + 2 * 2 and nvml.live_event_sets == 1
    c.close()
    c.close()
    assert nvml.initialized == 0 and nvml.live_gpm_samples == 0 and nvml.live_event_sets == 0
    assert nvml.calls("nvmlShutdown") == 1 and c.collect() == []


def test_main_reports_fields_and_cost(nvml: FakeNvml, capsys: pytest.CaptureFixture[str]) -> None:
    nvml.mig_add(1, 1, 0)
    assert gpu_module.main(["--samples", "3", "--interval", "0"], nvml=pynvml) == 0
    out = capsys.readouterr().out
    assert "8 x NVIDIA H100 80GB HBM3" in out and "driver 550.90.07, CUDA 12.4" in out
    assert "gpu.1.mig.1: 2 readings: memory gpm" in out
    assert "gpu.0: not supported: retired_pages_dbe retired_pages_pending retired_pages_sbe" in out
    assert re.search(r"field latencyUsec .*power_avg_mw \d+/\d+", out)
    assert re.search(r"per sample: first [\d.]+ ms, then mean [\d.]+ ms", out)


def test_main_without_nvml_prints_the_reason(
    nvml: FakeNvml, capsys: pytest.CaptureFixture[str]
) -> None:
    nvml.set(-1, "init_ret", 12)  # NVML_ERROR_LIBRARY_NOT_FOUND
    assert gpu_module.main(["--samples", "1"], nvml=pynvml) == 1
    assert capsys.readouterr().out.strip() == "NVML library not found: no GPU collector"


def test_ids_match_the_installed_pynvml() -> None:
    for fv in (*nvml_tables.FIELD_VALUES, *nvml_tables.NVLINK_FIELD_VALUES):
        if hasattr(pynvml, fv.constant):
            assert getattr(pynvml, fv.constant) == fv.field_id, fv.constant
    for m in nvml_tables.GPM_METRICS:
        if hasattr(pynvml, m.constant):
            assert getattr(pynvml, m.constant) == m.metric_id, m.constant
    assert FUNCTION_NOT_FOUND == pynvml.NVML_ERROR_FUNCTION_NOT_FOUND


def test_docs_list_every_field() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `([^`]+)` \|", line)
        if m:
            rows[m.group(1)] = line
    outputs = [
        (fv.suffix, fv.kind, fv.unit)
        for fv in (*nvml_tables.FIELD_VALUES, *nvml_tables.NVLINK_FIELD_VALUES)
    ]
    outputs += [o for f in nvml_tables.CALL_FIELDS for o in f.outputs]
    outputs += [(m.suffix, "gauge", m.unit) for m in nvml_tables.GPM_METRICS]
    for suffix, kind, unit in outputs:
        assert suffix in rows, f"docs/GPU.md has no row for {suffix}"
        assert kind in rows[suffix] and f"`{unit}`" in rows[suffix], rows[suffix]
    for extra in (
        "xid",
        "xid_count",
        "lost",
        "proc_count",
        "proc.<pid>.mem_bytes",
        "nvlink.<l>.tx_kib",
        "proc.<pid>.sm_util_pct",
    ):
        assert extra in rows, extra
