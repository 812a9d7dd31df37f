"""The NVML side of the GPU collector: what to ask NVML and how to read its answers.

- ``FIELD_VALUES``: every reading ``nvmlDeviceGetFieldValues`` can carry, asked
  in one call per GPU (field id, scope id, sample name, kind, unit);
- ``CALL_FIELDS``: the readings that need a call of their own (no field id
  exists for them), newest call first, older ones as fallbacks;
- ``GPM_METRICS``: the GPM metrics asked in one ``nvmlGpmMetricsGet`` call;
- the readings bound to a device: ``FieldBatch``, ``CallField``, ``Gpm`` and
  ``Processes``, each ``read(nv, handle, report)`` returning samples;
- ``classify``: what an NVML return code means for the collector.

Every id and struct layout here is nvml.h's (NVML API 13); see docs/GPU.md.
"""

from __future__ import annotations

import ctypes
import math
import re
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from snapcloud.collectors._base import Sample, SampleKind

UINT_MAX = 0xFFFFFFFF
ULLONG_MAX = 0xFFFFFFFFFFFFFFFF
GPM_MIN_GAP_S = 0.1  # NVIDIA: GPM samples must be over 100 ms apart (a hard limit on Hopper)

# nvmlReturn_t codes (nvml.h)
SUCCESS = 0
UNINITIALIZED = 1
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
INSUFFICIENT_SIZE = 7
DRIVER_NOT_LOADED = 9
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
RESET_REQUIRED = 16
LIB_RM_VERSION_MISMATCH = 18
ARGUMENT_VERSION_MISMATCH = 25
UNKNOWN = 999

_G: SampleKind = "gauge"
_C: SampleKind = "counter"

# What an NVML answer means for a reading (the collector's policy, docs/GPU.md):
UNSUPPORTED = "unsupported"  # this device cannot answer: drop the reading (or part)
FALLBACK = "fallback"  # the call is missing or too new: use the older call
INVALID = "invalid"  # NVML rejected the arguments: an error; re-enumerate the device
GONE = "gone"  # GpuIsLost from a reading: stop this device's sample, check its handle
FLAKY = "flaky"  # Unknown / ResetRequired from a reading: skip it, check the handle
REINIT = "reinit"  # the library lost its driver: shut down and initialise again
SKIP = "skip"  # anything else (Timeout, ...): skip this sample only

_CLASSES = {
    NOT_SUPPORTED: UNSUPPORTED,
    NO_PERMISSION: UNSUPPORTED,
    NOT_FOUND: UNSUPPORTED,
    FUNCTION_NOT_FOUND: FALLBACK,
    ARGUMENT_VERSION_MISMATCH: FALLBACK,
    INVALID_ARGUMENT: INVALID,
    GPU_IS_LOST: GONE,
    UNKNOWN: FLAKY,
    RESET_REQUIRED: FLAKY,
    UNINITIALIZED: REINIT,
    DRIVER_NOT_LOADED: REINIT,
    LIB_RM_VERSION_MISMATCH: REINIT,
}

Report = Callable[[str, int], str]  # (part of a reading, NVML code) -> class, logged


def classify(code: int) -> str:
    """The class (``UNSUPPORTED``, ``FALLBACK``, ...) of an NVML return code."""
    return _CLASSES.get(code, SKIP)


def error_code(exc: BaseException) -> int | None:
    """The NVML return code an exception stands for, or None if it is not NVML's.

    An ``AttributeError`` is an older pynvml without the binding or constant:
    the same as a driver without the function.
    """
    if isinstance(exc, AttributeError):
        return FUNCTION_NOT_FOUND
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) and type(exc).__name__.startswith("NVMLError") else None


# --- nvmlDeviceGetFieldValues ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FV:
    """One field of the batch: nvml.h's field id and scope id, and the sample it gives."""

    suffix: str
    field_id: int
    scope: int
    kind: SampleKind
    unit: str
    constant: str  # nvml.h's name, for the docs and the tests
    fallback: str = ""  # the CALL_FIELDS key to read once this field (and its peers) drop


FIELD_VALUES: tuple[FV, ...] = (
    FV("energy_mj", 83, 0, _C, "mJ", "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
    FV("power_avg_mw", 185, 0, _G, "mW", "NVML_FI_DEV_POWER_AVERAGE", "power_usage"),
    FV("power_instant_mw", 186, 0, _G, "mW", "NVML_FI_DEV_POWER_INSTANT", "power_usage"),
    FV("power_limit_mw", 190, 0, _G, "mW", "NVML_FI_DEV_POWER_CURRENT_LIMIT", "power_limit"),
    FV("mem_temp_c", 82, 0, _G, "C", "NVML_FI_DEV_MEMORY_TEMP"),
    FV("ecc_corrected", 3, 0, _C, "errors", "NVML_FI_DEV_ECC_SBE_VOL_TOTAL"),
    FV("ecc_uncorrected", 4, 0, _C, "errors", "NVML_FI_DEV_ECC_DBE_VOL_TOTAL"),
    FV("retired_pages_sbe", 29, 0, _G, "pages", "NVML_FI_DEV_RETIRED_SBE"),
    FV("retired_pages_dbe", 30, 0, _G, "pages", "NVML_FI_DEV_RETIRED_DBE"),
    FV("retired_pages_pending", 31, 0, _G, "bool", "NVML_FI_DEV_RETIRED_PENDING"),
    FV("remapped_rows_corr", 142, 0, _G, "rows", "NVML_FI_DEV_REMAPPED_COR"),
    FV("remapped_rows_unc", 143, 0, _G, "rows", "NVML_FI_DEV_REMAPPED_UNC"),
    FV("remapped_rows_pending", 144, 0, _G, "bool", "NVML_FI_DEV_REMAPPED_PENDING"),
    FV("remapped_rows_failure", 145, 0, _G, "bool", "NVML_FI_DEV_REMAPPED_FAILURE"),
    FV("pcie_replay", 94, 0, _C, "events", "NVML_FI_DEV_PCIE_REPLAY_COUNTER"),
    FV("violation_power_ns", 74, 0, _C, "ns", "NVML_FI_DEV_PERF_POLICY_POWER"),
    FV("violation_thermal_ns", 75, 0, _C, "ns", "NVML_FI_DEV_PERF_POLICY_THERMAL"),
    FV("violation_sync_boost_ns", 76, 0, _C, "ns", "NVML_FI_DEV_PERF_POLICY_SYNC_BOOST"),
    FV("violation_board_limit_ns", 77, 0, _C, "ns", "NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT"),
    FV("violation_low_util_ns", 78, 0, _C, "ns", "NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION"),
    FV("violation_reliability_ns", 79, 0, _C, "ns", "NVML_FI_DEV_PERF_POLICY_RELIABILITY"),
    FV(
        "violation_sw_thermal_ns",
        269,
        0,
        _C,
        "ns",
        "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN",
    ),
    FV(
        "violation_hw_thermal_ns",
        270,
        0,
        _C,
        "ns",
        "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN",
    ),
    FV(
        "violation_hw_power_brake_ns",
        271,
        0,
        _C,
        "ns",
        "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN",
    ),
)
NVLINK_LINK_COUNT = 91  # NVML_FI_DEV_NVLINK_LINK_COUNT, read once per GPU at open
# Asked only on GPUs with NVLinks (a GPU without any would report zeros).
NVLINK_FIELD_VALUES: tuple[FV, ...] = (
    FV("nvlink_tx_kib", 138, UINT_MAX, _C, "KiB", "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX"),
    FV("nvlink_rx_kib", 139, UINT_MAX, _C, "KiB", "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX"),
    FV(
        "nvlink_crc_flit_errors",
        38,
        0,
        _C,
        "errors",
        "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    ),
    FV(
        "nvlink_crc_data_errors",
        45,
        0,
        _C,
        "errors",
        "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
    ),
    FV("nvlink_replay_errors", 52, 0, _C, "errors", "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"),
    FV(
        "nvlink_recovery_errors",
        59,
        0,
        _C,
        "errors",
        "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
    ),
)
# Per link (opt-in ``nvlink_links``): scope id = the link.
NVLINK_LINK_FIELDS: tuple[tuple[str, int, str, str], ...] = (
    ("tx_kib", 138, "KiB", "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX"),
    ("rx_kib", 139, "KiB", "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX"),
    ("replay_errors", 161, "errors", "NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY"),
    ("recovery_errors", 162, "errors", "NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY"),
    ("crc_errors", 163, "errors", "NVML_FI_DEV_NVLINK_ERROR_DL_CRC"),
)


def nvlink_link_fields(links: int) -> tuple[FV, ...]:
    """The per-link entries of ``links`` NVLinks: ``nvlink.<l>.tx_kib`` and so on."""
    return tuple(
        FV(f"nvlink.{link}.{suffix}", fid, link, _C, unit, const)
        for link in range(links)
        for suffix, fid, unit, const in NVLINK_LINK_FIELDS
    )


# nvmlValue_t's member per nvmlValueType_t: the rest of the union is undefined.
_VALUE_MEMBER = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")


class _Value(ctypes.Union):
    """nvmlValue_t (nvml.h)."""

    _fields_ = (
        ("dVal", ctypes.c_double),
        ("uiVal", ctypes.c_uint),
        ("ulVal", ctypes.c_ulong),
        ("ullVal", ctypes.c_ulonglong),
        ("sllVal", ctypes.c_longlong),
        ("siVal", ctypes.c_int),
        ("usVal", ctypes.c_ushort),
    )


class _FieldValue(ctypes.Structure):
    """nvmlFieldValue_t (nvml.h): pynvml's answer is read through this plain struct.

    pynvml's own struct class formats every attribute it hands out, which costs
    more than the NVML call; the bytes are the same (``field_values`` checks).
    """

    _fields_ = (
        ("fieldId", ctypes.c_uint),
        ("scopeId", ctypes.c_uint),
        ("timestamp", ctypes.c_longlong),
        ("latencyUsec", ctypes.c_longlong),
        ("valueType", ctypes.c_int),
        ("nvmlReturn", ctypes.c_int),
        ("value", _Value),
    )


def field_values(values: Any) -> list[tuple[int, float, int]]:
    """(nvmlReturn, value, latencyUsec) of each entry of pynvml's nvmlFieldValue_t array.

    The value is read from the union member its valueType names (NaN when the
    entry failed, or for a value type nvml.h does not define). Raises
    ``ValueError`` if the array is not nvml.h's layout.
    """
    if ctypes.sizeof(values) != ctypes.sizeof(_FieldValue) * len(values):
        raise ValueError(f"nvmlFieldValue_t of {ctypes.sizeof(values) // len(values)} bytes")
    out = []
    for v in (_FieldValue * len(values)).from_buffer(values):
        ret, kind = v.nvmlReturn, v.valueType
        if ret == SUCCESS and 0 <= kind < len(_VALUE_MEMBER):
            out.append((ret, float(getattr(v.value, _VALUE_MEMBER[kind])), v.latencyUsec))
        else:
            out.append((ret, math.nan, v.latencyUsec))
    return out


class FieldBatch:
    """The GPU's fields that nvmlDeviceGetFieldValues carries, asked in one call.

    Keeps each field's ``latencyUsec`` (NVML's own measure of what reading the
    field cost), so the real per-field cost is visible on hardware.
    """

    key = "field_values"

    def __init__(self, prefix: str, entries: Sequence[FV]) -> None:
        self.prefix = prefix
        self.entries = list(entries)
        self.dropped_now: list[FV] = []  # what the last read dropped
        self._lat: dict[str, list[int]] = {}  # suffix -> [answers, sum, max]
        self._index()

    def _index(self) -> None:
        self.ids = [(e.field_id, e.scope) for e in self.entries]
        self.specs = [(f"{self.prefix}.{e.suffix}", e.kind, e.unit) for e in self.entries]
        self._stats = [self._lat.setdefault(e.suffix, [0, 0, 0]) for e in self.entries]

    @property
    def latency(self) -> dict[str, tuple[int, int, int]]:
        """Per field: how many answers, the sum and the max of their ``latencyUsec``."""
        return {k: (n, total, peak) for k, (n, total, peak) in self._lat.items() if n}

    def read(self, nv: Any, handle: Any, report: Report) -> list[Sample]:
        """One call; a field NVML cannot answer is reported (and dropped if the class says so)."""
        answers = field_values(nv.nvmlDeviceGetFieldValues(handle, self.ids))
        out: list[Sample] = []
        failed = []
        specs = zip(self.specs, self._stats, answers, strict=True)
        for i, ((name, kind, unit), stat, (ret, value, latency)) in enumerate(specs):
            if value != value:  # NaN: the entry failed
                failed.append((i, ret))
                continue
            out.append(Sample(name, value, kind, unit))
            stat[0] += 1
            stat[1] += latency
            stat[2] = max(stat[2], latency)
        self.dropped_now = []
        for i, ret in failed:
            e = self.entries[i]
            code = UNKNOWN if ret == SUCCESS else ret  # SUCCESS: a value type nvml.h lacks
            if report(e.suffix, code) in (UNSUPPORTED, INVALID):
                self.dropped_now.append(e)  # an id this driver does not know stays unknown
        if self.dropped_now:
            self.entries = [e for e in self.entries if e not in self.dropped_now]
            self._index()
        return out

    def fallbacks_due(self) -> set[str]:
        """The CALL_FIELDS keys the last read left without any batch field."""
        left = {e.fallback for e in self.entries}
        return {e.fallback for e in self.dropped_now if e.fallback and e.fallback not in left}

    def fallback(self) -> bool:
        """No older call than nvmlDeviceGetFieldValues."""
        return False

    def close(self, nv: Any) -> None:
        """Nothing held."""


# --- readings with a call of their own -----------------------------------------------

_Reader = Callable[[Any, Any], Sequence[float | None]]


def _util(nv: Any, h: Any) -> tuple[float, float]:
    u = nv.nvmlDeviceGetUtilizationRates(h)
    return (u.gpu, u.memory)


def _memory_v2(nv: Any, h: Any) -> tuple[float, float, float, float]:
    m = nv.nvmlDeviceGetMemoryInfo(h, version=nv.nvmlMemory_v2)
    return (m.used, m.free, m.total, m.reserved)


def _memory_v1(nv: Any, h: Any) -> tuple[float, float, float, None]:
    m = nv.nvmlDeviceGetMemoryInfo(h)  # counts driver-reserved memory as used
    return (m.used, m.free, m.total, None)


def _temp_v(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetTemperatureV(h, nv.NVML_TEMPERATURE_GPU),)


def _temp(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),)


def _clock(constant: str) -> _Reader:
    def read(nv: Any, h: Any) -> tuple[float]:
        return (nv.nvmlDeviceGetClockInfo(h, getattr(nv, constant)),)

    return read


def _enc(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetEncoderUtilization(h)[0],)  # [1] is the sampling period in us


def _dec(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetDecoderUtilization(h)[0],)


def _event_reasons(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetCurrentClocksEventReasons(h),)


def _throttle_reasons(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetCurrentClocksThrottleReasons(h),)


def _pstate(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetPerformanceState(h),)


def _fan(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetFanSpeed(h),)


def _pcie(nv: Any, h: Any) -> tuple[float, float]:
    # Each call counts bytes over 20 ms inside the driver: why pcie is opt-in.
    tx = nv.nvmlDeviceGetPcieThroughput(h, nv.NVML_PCIE_UTIL_TX_BYTES)
    rx = nv.nvmlDeviceGetPcieThroughput(h, nv.NVML_PCIE_UTIL_RX_BYTES)
    return (tx, rx)


def _power_usage(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetPowerUsage(h),)


def _power_limit(nv: Any, h: Any) -> tuple[float]:
    return (nv.nvmlDeviceGetEnforcedPowerLimit(h),)


@dataclass(frozen=True, slots=True)
class CallField:
    """A reading with a call of its own: its samples and its calls, newest first."""

    key: str
    outputs: tuple[tuple[str, SampleKind, str], ...]  # (name suffix, kind, unit)
    readers: tuple[_Reader, ...]
    group: str = ""  # "" = default, else the opt-in group; "fallback" = bound on demand
    calls: tuple[str, ...] = ()  # the NVML functions, for the docs


CALL_FIELDS: tuple[CallField, ...] = (
    CallField(
        "memory",
        (
            ("fb_used_bytes", _G, "bytes"),
            ("fb_free_bytes", _G, "bytes"),
            ("fb_total_bytes", _G, "bytes"),
            ("fb_reserved_bytes", _G, "bytes"),
        ),
        (_memory_v2, _memory_v1),
        calls=("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo"),
    ),
    CallField(
        "util",
        (("util_pct", _G, "%"), ("mem_util_pct", _G, "%")),
        (_util,),
        calls=("nvmlDeviceGetUtilizationRates",),
    ),
    CallField(
        "temp",
        (("temp_c", _G, "C"),),
        (_temp_v, _temp),
        calls=("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"),
    ),
    CallField(
        "sm_clock",
        (("sm_clock_mhz", _G, "MHz"),),
        (_clock("NVML_CLOCK_SM"),),
        calls=("nvmlDeviceGetClockInfo",),
    ),
    CallField(
        "mem_clock",
        (("mem_clock_mhz", _G, "MHz"),),
        (_clock("NVML_CLOCK_MEM"),),
        calls=("nvmlDeviceGetClockInfo",),
    ),
    CallField(
        "enc_util",
        (("enc_util_pct", _G, "%"),),
        (_enc,),
        calls=("nvmlDeviceGetEncoderUtilization",),
    ),
    CallField(
        "dec_util",
        (("dec_util_pct", _G, "%"),),
        (_dec,),
        calls=("nvmlDeviceGetDecoderUtilization",),
    ),
    CallField(
        "gfx_clock",
        (("gfx_clock_mhz", _G, "MHz"),),
        (_clock("NVML_CLOCK_GRAPHICS"),),
        group="state",
        calls=("nvmlDeviceGetClockInfo",),
    ),
    CallField(
        "clock_event_reasons",
        (("clock_event_reasons", _G, "bitmask"),),
        (_event_reasons, _throttle_reasons),
        group="state",
        calls=(
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ),
    ),
    CallField(
        "pstate",
        (("pstate", _G, "pstate"),),
        (_pstate,),
        group="state",
        calls=("nvmlDeviceGetPerformanceState",),
    ),
    CallField(
        "fan", (("fan_pct", _G, "%"),), (_fan,), group="state", calls=("nvmlDeviceGetFanSpeed",)
    ),
    CallField(
        "pcie",
        (("pcie_tx_kbps", _G, "KB/s"), ("pcie_rx_kbps", _G, "KB/s")),
        (_pcie,),
        group="pcie",
        calls=("nvmlDeviceGetPcieThroughput",),
    ),
    CallField(
        "power_limit",
        (("power_limit_mw", _G, "mW"),),
        (_power_limit,),
        group="fallback",
        calls=("nvmlDeviceGetEnforcedPowerLimit",),
    ),
)
CALL_FIELD = {f.key: f for f in CALL_FIELDS}
MIG_FIELDS = ("memory",)  # what NVML answers on a MIG device handle


def power_usage_field(average: bool) -> CallField:
    """nvmlDeviceGetPowerUsage, named for what it measures on this GPU."""
    name = "power_avg_mw" if average else "power_instant_mw"
    return CallField(
        "power_usage",
        ((name, _G, "mW"),),
        (_power_usage,),
        group="fallback",
        calls=("nvmlDeviceGetPowerUsage",),
    )


ARCH_NAMES = {
    2: "kepler",
    3: "maxwell",
    4: "pascal",
    5: "volta",
    6: "turing",
    7: "ampere",
    8: "ada",
    9: "hopper",
    10: "blackwell",
}
_ARCH_AMPERE = 7


def power_usage_is_average(arch: int | None, pci_device_id: int | None) -> bool | None:
    """Whether nvmlDeviceGetPowerUsage averages over 1 s on this GPU; None if unknown.

    NVML: "On Ampere (except GA100) or newer GPUs, the API returns power averaged
    over 1 sec interval. On GA100 and older architectures, instantaneous power is
    returned." GA100 boards (A100, A30, A800) carry PCI device ids 0x20xx.
    """
    if arch is None or arch not in ARCH_NAMES:
        return None
    if arch < _ARCH_AMPERE:
        return False
    if arch == _ARCH_AMPERE:
        if pci_device_id is None:
            return None
        return not 0x2000 <= (pci_device_id >> 16) <= 0x20FF
    return True


class Call:
    """A CallField bound to a device: full sample names and the reader in use."""

    def __init__(self, prefix: str, spec: CallField) -> None:
        self.spec = spec
        self.key = spec.key
        self.names = tuple((f"{prefix}.{s}", k, u) for s, k, u in spec.outputs)
        self.reader = 0

    def read(self, nv: Any, handle: Any, report: Report) -> list[Sample]:
        """One call (pcie: two); ``None`` outputs (memory v1's reserved) are left out."""
        values = self.spec.readers[self.reader](nv, handle)
        return [
            Sample(name, float(value), kind, unit)
            for (name, kind, unit), value in zip(self.names, values, strict=True)
            if value is not None
        ]

    def fallback(self) -> bool:
        """Use the next older call; False when none is left."""
        if self.reader + 1 < len(self.spec.readers):
            self.reader += 1
            return True
        return False

    def close(self, nv: Any) -> None:
        """Nothing held."""


# --- GPM ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpmMetric:
    """One GPM metric: nvml.h's id and the sample it gives."""

    suffix: str
    metric_id: int
    unit: str
    constant: str


GPM_METRICS: tuple[GpmMetric, ...] = (
    GpmMetric("gpm.graphics_util_pct", 1, "%", "NVML_GPM_METRIC_GRAPHICS_UTIL"),
    GpmMetric("gpm.sm_util_pct", 2, "%", "NVML_GPM_METRIC_SM_UTIL"),
    GpmMetric("gpm.sm_occupancy_pct", 3, "%", "NVML_GPM_METRIC_SM_OCCUPANCY"),
    GpmMetric("gpm.tensor_active_pct", 5, "%", "NVML_GPM_METRIC_ANY_TENSOR_UTIL"),
    GpmMetric("gpm.dram_bw_util_pct", 10, "%", "NVML_GPM_METRIC_DRAM_BW_UTIL"),
    GpmMetric("gpm.pcie_tx_mibps", 20, "MiB/s", "NVML_GPM_METRIC_PCIE_TX_PER_SEC"),
    GpmMetric("gpm.pcie_rx_mibps", 21, "MiB/s", "NVML_GPM_METRIC_PCIE_RX_PER_SEC"),
    GpmMetric("gpm.nvlink_rx_mibps", 60, "MiB/s", "NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC"),
    GpmMetric("gpm.nvlink_tx_mibps", 61, "MiB/s", "NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC"),
)


class Gpm:
    """Two GPM sample buffers of a GPU, or of one of its GPU instances (MIG).

    The first ``read`` only takes a sample; each later one, at least
    ``GPM_MIN_GAP_S`` after the previous sample, takes another and reports the
    metrics between the two. A failed sample or metrics call starts over, so
    the next two reads recover.
    """

    key = "gpm"

    def __init__(
        self,
        nv: Any,
        prefix: str,
        handle: Any,
        gpu_instance: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handle = handle
        self.gpu_instance = gpu_instance
        self.clock = clock
        self.prefix = prefix
        self.metrics = list(GPM_METRICS)
        first = nv.nvmlGpmSampleAlloc()
        try:
            second = nv.nvmlGpmSampleAlloc()
        except BaseException:
            nv.nvmlGpmSampleFree(first)
            raise
        self.samples = [first, second]
        self.taken_at: float | None = None
        self.mg = self._metrics_get(nv)

    def _metrics_get(self, nv: Any) -> Any:
        mg = nv.c_nvmlGpmMetricsGet_t()
        mg.version = nv.NVML_GPM_METRICS_GET_VERSION
        mg.numMetrics = len(self.metrics)
        for i, m in enumerate(self.metrics):
            mg.metrics[i].metricId = m.metric_id
        return mg

    def _take(self, nv: Any, sample: Any) -> None:
        if self.gpu_instance is None:
            nv.nvmlGpmSampleGet(self.handle, sample)
        else:
            nv.nvmlGpmMigSampleGet(self.handle, self.gpu_instance, sample)

    def read(self, nv: Any, handle: Any, report: Report) -> list[Sample]:
        """Metrics since the previous sample, or nothing (first sample, or too soon)."""
        now = self.clock()
        if self.taken_at is not None and now - self.taken_at < GPM_MIN_GAP_S:
            return []
        prev, cur = self.samples
        first = self.taken_at is None
        self.taken_at = None  # a failure below starts over
        self._take(nv, prev if first else cur)
        if first:
            self.taken_at = now
            return []
        self.mg.sample1, self.mg.sample2 = prev, cur
        nv.nvmlGpmMetricsGet(self.mg)
        self.samples = [cur, prev]
        self.taken_at = now
        return self._results(nv, report)

    def _results(self, nv: Any, report: Report) -> list[Sample]:
        out: list[Sample] = []
        dropped = []
        results = self.mg.metrics  # pynvml's struct class: fetched once
        for i, m in enumerate(self.metrics):
            r = results[i]
            if r.nvmlReturn == SUCCESS:
                out.append(Sample(f"{self.prefix}.{m.suffix}", float(r.value), _G, m.unit))
            elif report(m.suffix, int(r.nvmlReturn)) == UNSUPPORTED:
                dropped.append(m)
        if dropped:
            self.metrics = [m for m in self.metrics if m not in dropped]
            if not self.metrics:  # nothing left to ask: the whole reading goes
                raise nv.NVMLError(NOT_SUPPORTED)
            self.mg = self._metrics_get(nv)
        return out

    def fallback(self) -> bool:
        """GPM has no older call."""
        return False

    def close(self, nv: Any) -> None:
        """Free both sample buffers (NVML errors propagate after both are tried)."""
        errors = []
        for sample in self.samples:
            try:
                nv.nvmlGpmSampleFree(sample)
            except Exception as exc:  # free the other one anyway
                errors.append(exc)
        self.samples = []
        if errors:
            raise errors[0]


# --- processes -------------------------------------------------------------------------


class ProcessInfoV2(ctypes.Structure):
    """nvmlProcessInfo_v2_t (nvml.h), what the _v2 and (fixed) _v3 calls write: 24 bytes."""

    _fields_ = (
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
    )


class ProcessInfo535(ctypes.Structure):
    """What drivers 535.43 to 535.85 wrote from the _v3 calls: 32 bytes.

    Those drivers appended ``usedGpuCcProtectedMemory``; reading their answer
    with the 24-byte struct (as nvidia-ml-py does) gives wrong pids and memory.
    See gpustat #161 and nvitop's libnvml.
    """

    _fields_ = (
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
        ("usedGpuCcProtectedMemory", ctypes.c_ulonglong),
    )


def driver_tuple(version: str) -> tuple[int, ...]:
    """``"535.54.03"`` -> ``(535, 54, 3)``; unparseable parts are left out."""
    return tuple(int(x) for x in re.findall(r"\d+", version))


def process_struct(driver: str) -> type[ctypes.Structure]:
    """The struct the _v3 process calls of this driver write."""
    return ProcessInfo535 if (535, 43) <= driver_tuple(driver)[:2] < (535, 86) else ProcessInfoV2


_PROCESS_KINDS = ("compute", "graphics")
_PROCESS_CALLS = {
    kind: (f"nvmlDeviceGet{name}RunningProcesses_v3", f"nvmlDeviceGet{name}RunningProcesses_v2")
    for kind, name in (("compute", "Compute"), ("graphics", "Graphics"))
}


@dataclass(frozen=True, slots=True)
class ProcessEntry:
    """One process context of one GPU (or GPU instance)."""

    pid: int
    used_bytes: int | None
    gpu_instance: int
    compute_instance: int


class Processes:
    """Compute and graphics processes of a GPU and their utilisation (opt-in ``processes``).

    Calls the process functions itself, through pynvml's function lookup, with
    the struct this driver writes (``process_struct``). One call per kind and
    device when the buffer is big enough; when NVML answers
    NVML_ERROR_INSUFFICIENT_SIZE with the count it needs, the buffer grows to
    twice that plus five and the call is made again. On a MIG-enabled GPU the
    MIG device handles are asked (the GPU itself answers NoPermission unless
    root); ``handles`` holds them.
    """

    key = "processes"

    def __init__(self, prefix: str, driver: str) -> None:
        self.prefix = prefix
        self.v3_struct = process_struct(driver)
        self.kinds = list(_PROCESS_KINDS)
        self.version = dict.fromkeys(_PROCESS_KINDS, 0)  # 0: _v3, 1: _v2
        self.capacity = dict.fromkeys(_PROCESS_KINDS, 16)
        self.handles: list[Any] | None = None  # None: the GPU's own handle
        self.util = True
        self.util_seen_us = 0

    def read(self, nv: Any, handle: Any, report: Report) -> list[Sample]:
        """proc_count, per-pid memory and, where NVML keeps it, per-pid utilisation."""
        entries: list[ProcessEntry] = []
        for kind in list(self.kinds):
            for h in self.handles if self.handles is not None else [handle]:
                entries.extend(self._query(nv, kind, h, report))
        out = _process_samples(self.prefix, entries)
        if self.util:
            out.extend(self._utilization(nv, handle, report))
        return out

    def _query(self, nv: Any, kind: str, handle: Any, report: Report) -> list[ProcessEntry]:
        while True:
            symbol = _PROCESS_CALLS[kind][self.version[kind]]
            try:
                return self._call(nv, kind, symbol, handle)
            except Exception as exc:
                code = error_code(exc)
                if code is None:
                    raise
                cls = report(f"{kind}_processes", code)
                if cls == FALLBACK and self.version[kind] == 0:
                    self.version[kind] = 1
                    continue
                if cls in (UNSUPPORTED, FALLBACK):
                    self.kinds.remove(kind)
                return []

    def _call(self, nv: Any, kind: str, symbol: str, handle: Any) -> list[ProcessEntry]:
        fn = nv._nvmlGetFunctionPointer(symbol)
        struct = self.v3_struct if self.version[kind] == 0 else ProcessInfoV2
        for _ in range(3):
            count = ctypes.c_uint(self.capacity[kind])
            buf = (struct * self.capacity[kind])()
            ret = fn(handle, ctypes.byref(count), buf)
            if ret == INSUFFICIENT_SIZE:
                self.capacity[kind] = count.value * 2 + 5
                continue
            if ret != SUCCESS:
                raise nv.NVMLError(ret)
            return [
                ProcessEntry(
                    int(p.pid),
                    None if p.usedGpuMemory == ULLONG_MAX else int(p.usedGpuMemory),
                    int(p.gpuInstanceId),
                    int(p.computeInstanceId),
                )
                for p in buf[: count.value]
            ]
        raise nv.NVMLError(INSUFFICIENT_SIZE)  # processes kept appearing faster than we grew

    def _utilization(self, nv: Any, handle: Any, report: Report) -> list[Sample]:
        try:
            found = nv.nvmlDeviceGetProcessUtilization(handle, self.util_seen_us)
        except Exception as exc:
            code = error_code(exc)
            if code is None:
                raise
            if code in (NOT_FOUND, SUCCESS):  # no sample since the last one
                return []
            if report("process_utilization", code) in (UNSUPPORTED, FALLBACK):
                self.util = False
            return []
        latest: dict[int, Any] = {}
        for s in found:
            if s.pid not in latest or s.timeStamp >= latest[s.pid].timeStamp:
                latest[int(s.pid)] = s
            self.util_seen_us = max(self.util_seen_us, int(s.timeStamp))
        out = []
        for pid, s in sorted(latest.items()):
            out.append(Sample(f"{self.prefix}.proc.{pid}.sm_util_pct", float(s.smUtil), _G, "%"))
            out.append(Sample(f"{self.prefix}.proc.{pid}.mem_util_pct", float(s.memUtil), _G, "%"))
        return out

    def fallback(self) -> bool:
        """Fallbacks happen per kind inside ``read``."""
        return False

    def close(self, nv: Any) -> None:
        """Nothing held."""


def _process_samples(prefix: str, entries: Sequence[ProcessEntry]) -> list[Sample]:
    """proc_count and per-pid memory: one context counted once, instances summed.

    A process with compute and graphics contexts on the same (MIG) device is
    listed by both calls with the same memory: it counts once. A process on
    several GPU instances is summed over them.
    """
    per_context: dict[tuple[int, int, int], int | None] = {}
    for e in entries:
        key = (e.pid, e.gpu_instance, e.compute_instance)
        old = per_context.get(key)
        per_context[key] = e.used_bytes if old is None else max(old, e.used_bytes or 0)
    mem: dict[int, float] = {}
    for (pid, _, _), used in per_context.items():
        if used is not None:
            mem[pid] = mem.get(pid, 0.0) + float(used)
    out = [Sample(f"{prefix}.proc_count", float(len({e.pid for e in entries})), _G, "count")]
    out.extend(
        Sample(f"{prefix}.proc.{pid}.mem_bytes", used, _G, "bytes")
        for pid, used in sorted(mem.items())
    )
    return out


# --- helpers -----------------------------------------------------------------------------


def text(value: Any) -> str:
    """A pynvml string answer (bytes in older versions) as str."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def handle_key(handle: Any) -> Hashable:
    """What identifies an NVML handle: the address behind the ctypes pointer.

    pynvml hands out a new pointer object for the same device in every event,
    and ctypes pointers compare by identity, not by address.
    """
    try:
        address: int | None = ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        key: Hashable = handle
        return key
    return address or 0


def init_reason(code: int | None, exc: BaseException) -> str:
    """One line saying why NVML could not be initialised."""
    if code == 12:  # NVML_ERROR_LIBRARY_NOT_FOUND
        return "NVML library not found: no GPU collector"
    if code == DRIVER_NOT_LOADED:
        return "NVIDIA driver not loaded: no GPU collector"
    if code == NO_PERMISSION:
        return "NVML: insufficient permissions: no GPU collector"
    return f"NVML initialisation failed ({exc}): no GPU collector"
