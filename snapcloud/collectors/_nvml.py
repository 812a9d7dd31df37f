"""The NVML side of the GPU collector: one reader per NVML call, the field table
(every field, its calls newest first, its sample names, units and kinds), the GPM
reader, and the per-device state ``GpuCollector`` keeps. See docs/GPU.md."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from snapcloud.collectors._base import SampleKind

_MAX_EVENTS_PER_COLLECT = 64
_GPM_METRICS = (
    ("sm_util_pct", "NVML_GPM_METRIC_SM_UTIL"),
    ("sm_occupancy_pct", "NVML_GPM_METRIC_SM_OCCUPANCY"),
    ("tensor_active_pct", "NVML_GPM_METRIC_ANY_TENSOR_UTIL"),
    ("dram_bw_util_pct", "NVML_GPM_METRIC_DRAM_BW_UTIL"),
)
# nvmlValue_t union member per nvmlValueType_t, for nvmlDeviceGetFieldValues.
_VALUE_MEMBER = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")

_Reader = Callable[[Any, Any], Any]  # (nvml module, device handle) -> values


# --- readers: one NVML call each (pcie: two), newest call first in a field ---


def _util(nv: Any, h: Any) -> tuple[float, float]:
    u = nv.nvmlDeviceGetUtilizationRates(h)
    return (u.gpu, u.memory)


def _memory_v2(nv: Any, h: Any) -> tuple[float, float, float]:
    m = nv.nvmlDeviceGetMemoryInfo(h, version=nv.nvmlMemory_v2)
    return (m.used, m.free, m.total)


def _memory_v1(nv: Any, h: Any) -> tuple[float, float, float]:
    m = nv.nvmlDeviceGetMemoryInfo(h)
    return (m.used, m.free, m.total)


def _power(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetPowerUsage(h),)


def _power_limit(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetEnforcedPowerLimit(h),)


def _energy(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetTotalEnergyConsumption(h),)


def _temp_v(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetTemperatureV(h, nv.NVML_TEMPERATURE_GPU),)


def _temp(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),)


def _mem_temp(nv: Any, h: Any) -> tuple[float]:
    v = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_MEMORY_TEMP])[0]
    if v.nvmlReturn != nv.NVML_SUCCESS:
        raise nv.NVMLError(v.nvmlReturn)
    member = _VALUE_MEMBER[v.valueType] if 0 <= v.valueType < len(_VALUE_MEMBER) else "ullVal"
    return (getattr(v.value, member),)


def _clock(constant: str) -> _Reader:
    def read(nv: Any, h: Any) -> tuple[float]:
        return (nv.nvmlDeviceGetClockInfo(h, getattr(nv, constant)),)

    return read


def _event_reasons(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetCurrentClocksEventReasons(h),)


def _throttle_reasons(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetCurrentClocksThrottleReasons(h),)


def _ecc(error_type: str) -> _Reader:
    def read(nv: Any, h: Any) -> tuple[float]:
        return (nv.nvmlDeviceGetTotalEccErrors(h, getattr(nv, error_type), nv.NVML_VOLATILE_ECC),)

    return read


def _remapped_rows(nv: Any, h: Any) -> tuple[float, float, float, float]:
    corr, unc, pending, failure = nv.nvmlDeviceGetRemappedRows(h)
    return (corr, unc, pending, failure)


def _enc(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetEncoderUtilization(h)[0],)


def _dec(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetDecoderUtilization(h)[0],)


def _pstate(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetPerformanceState(h),)


def _fan(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetFanSpeed(h),)


def _pcie(nv: Any, h: Any) -> tuple[float, float]:
    # Each call counts bytes over 20 ms inside the driver: why pcie is opt-in.
    tx = nv.nvmlDeviceGetPcieThroughput(h, nv.NVML_PCIE_UTIL_TX_BYTES)
    rx = nv.nvmlDeviceGetPcieThroughput(h, nv.NVML_PCIE_UTIL_RX_BYTES)
    return (tx, rx)


def _procs_v3(nv: Any, h: Any) -> Any:
    return nv.nvmlDeviceGetComputeRunningProcesses_v3(h)


def _procs_v2(nv: Any, h: Any) -> Any:
    return nv.nvmlDeviceGetComputeRunningProcesses_v2(h)


@dataclass(frozen=True, slots=True)
class _Field:
    """One NVML query of a device: the samples it yields and how to read them."""

    key: str
    outputs: tuple[tuple[str, SampleKind, str], ...]  # (name suffix, kind, unit)
    readers: tuple[_Reader, ...]  # newest call first; the rest are fallbacks
    group: str = ""  # "" = sampled by default, else the OPT_IN name that enables it
    on_mig: bool = False  # also read on MIG devices


_G: SampleKind = "gauge"
_C: SampleKind = "counter"

_FIELDS: tuple[_Field, ...] = (
    _Field("util", (("util_pct", _G, "%"), ("mem_util_pct", _G, "%")), (_util,), on_mig=True),
    _Field(
        "memory",
        (
            ("fb_used_bytes", _G, "bytes"),
            ("fb_free_bytes", _G, "bytes"),
            ("fb_total_bytes", _G, "bytes"),
        ),
        (_memory_v2, _memory_v1),
        on_mig=True,
    ),
    _Field("power", (("power_mw", _G, "mW"),), (_power,)),
    _Field("power_limit", (("power_limit_mw", _G, "mW"),), (_power_limit,)),
    _Field("energy", (("energy_mj", _C, "mJ"),), (_energy,)),
    _Field("temp", (("temp_c", _G, "C"),), (_temp_v, _temp)),
    _Field("mem_temp", (("mem_temp_c", _G, "C"),), (_mem_temp,)),
    _Field("sm_clock", (("sm_clock_mhz", _G, "MHz"),), (_clock("NVML_CLOCK_SM"),)),
    _Field("mem_clock", (("mem_clock_mhz", _G, "MHz"),), (_clock("NVML_CLOCK_MEM"),)),
    _Field("gfx_clock", (("gfx_clock_mhz", _G, "MHz"),), (_clock("NVML_CLOCK_GRAPHICS"),)),
    _Field(
        "clock_event_reasons",
        (("clock_event_reasons", _G, "bitmask"),),
        (_event_reasons, _throttle_reasons),
    ),
    _Field(
        "ecc_corrected",
        (("ecc_corrected", _C, "errors"),),
        (_ecc("NVML_MEMORY_ERROR_TYPE_CORRECTED"),),
    ),
    _Field(
        "ecc_uncorrected",
        (("ecc_uncorrected", _C, "errors"),),
        (_ecc("NVML_MEMORY_ERROR_TYPE_UNCORRECTED"),),
    ),
    _Field(
        "remapped_rows",
        (
            ("remapped_rows_corr", _G, "rows"),
            ("remapped_rows_unc", _G, "rows"),
            ("remapped_rows_pending", _G, "bool"),
            ("remapped_rows_failure", _G, "bool"),
        ),
        (_remapped_rows,),
    ),
    _Field("enc_util", (("enc_util_pct", _G, "%"),), (_enc,)),
    _Field("dec_util", (("dec_util_pct", _G, "%"),), (_dec,)),
    _Field("pstate", (("pstate", _G, "pstate"),), (_pstate,)),
    _Field("fan", (("fan_pct", _G, "%"),), (_fan,)),
    _Field(
        "pcie",
        (("pcie_tx_kbps", _G, "KB/s"), ("pcie_rx_kbps", _G, "KB/s")),
        (_pcie,),
        group="pcie",
    ),
    _Field("processes", (("proc_count", _G, "count"),), (_procs_v3, _procs_v2), group="processes"),
)


class _Gpm:
    """A reader holding two GPM samples of one device: each call returns metrics between them."""

    __slots__ = ("cur", "ids", "mg", "prev")

    def __init__(self, nv: Any, handle: Any) -> None:
        self.prev = nv.nvmlGpmSampleAlloc()
        try:
            self.cur = nv.nvmlGpmSampleAlloc()
        except BaseException:
            nv.nvmlGpmSampleFree(self.prev)
            raise
        try:
            nv.nvmlGpmSampleGet(handle, self.prev)
        except BaseException:
            self.free(nv)
            raise
        self.mg = nv.c_nvmlGpmMetricsGet_t()
        self.mg.version = nv.NVML_GPM_METRICS_GET_VERSION
        self.mg.numMetrics = len(_GPM_METRICS)
        self.ids = [getattr(nv, const) for _, const in _GPM_METRICS]
        for i, metric_id in enumerate(self.ids):
            self.mg.metrics[i].metricId = metric_id

    def __call__(self, nv: Any, handle: Any) -> tuple[float | None, ...]:
        nv.nvmlGpmSampleGet(handle, self.cur)
        self.mg.sample1, self.mg.sample2 = self.prev, self.cur
        nv.nvmlGpmMetricsGet(self.mg)
        self.prev, self.cur = self.cur, self.prev
        ok = nv.NVML_SUCCESS
        metrics = self.mg.metrics
        return tuple(
            metrics[i].value if metrics[i].nvmlReturn == ok else None for i in range(len(self.ids))
        )

    def free(self, nv: Any) -> None:
        for sample in (self.prev, self.cur):
            nv.nvmlGpmSampleFree(sample)


@dataclass(slots=True)
class _Bound:
    """A field bound to one device: full sample names and the reader in use."""

    field: _Field
    specs: tuple[tuple[str, SampleKind, str], ...]
    reader: int = 0


@dataclass(slots=True)
class _Device:
    """A GPU or MIG device: its handle (created once) and the fields it still answers."""

    prefix: str
    handle: Any
    bound: tuple[_Bound, ...] = ()
    migs: list[_Device] = field(default_factory=list)
    parent: _Device | None = None
    lost: bool = False
    lost_name: str = ""
    gpm: _Gpm | None = None
    xid: bool = False
    xid_names: tuple[str, str] = ("", "")
    xid_count: int = 0
    xid_last: int = 0

    @property
    def root(self) -> _Device:
        return self.parent if self.parent is not None else self


class _DeviceLost(Exception):
    """Raised inside a sample to stop reading a device that NVML says is gone."""


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _handle_key(handle: Any) -> Hashable:
    """What identifies an NVML handle: the address behind a ctypes pointer, else the handle.

    pynvml hands out a new pointer object for the same device in every event,
    and ctypes pointers compare by identity, not by address.
    """
    try:
        address: int | None = ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        key: Hashable = handle  # not a ctypes pointer (a test double): must be hashable
        return key
    return address or 0


def _error_classes(nv: Any, *names: str) -> tuple[type[BaseException], ...]:
    found = (getattr(nv, n, None) for n in names)
    return tuple(c for c in found if isinstance(c, type) and issubclass(c, BaseException))


def _init_reason(nv: Any, exc: BaseException) -> str:
    if isinstance(exc, _error_classes(nv, "NVMLError_LibraryNotFound")):
        return "NVML library not found: no GPU collector"
    if isinstance(exc, _error_classes(nv, "NVMLError_DriverNotLoaded")):
        return "NVIDIA driver not loaded: no GPU collector"
    if isinstance(exc, _error_classes(nv, "NVMLError_NoPermission")):
        return "NVML: insufficient permissions: no GPU collector"
    return f"NVML initialisation failed ({exc}): no GPU collector"
