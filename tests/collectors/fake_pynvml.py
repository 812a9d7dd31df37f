"""A fake ``pynvml`` module: H100-like devices, scripted failures, counted calls.

``make_fake_nvml(...)`` returns a ``types.ModuleType`` carrying the pynvml
functions, constants and ``NVMLError`` classes the GPU collector uses, with the
same names and return shapes (checked against nvidia-ml-py 13.x). What it can
simulate:

- ``device_count`` H100 80GB HBM3 devices with varying, plausible readings;
- ``mig_devices={i: n}``: device ``i`` in MIG mode with ``n`` MIG devices, which
  answer memory info and UUID only (everything else: NotSupported);
- ``not_supported={"nvmlDeviceGetFanSpeed": None}``: a C symbol answering
  NotSupported on every device (``None``) or on the listed indices;
- ``lost_after={i: n}``: device ``i`` raises ``lost_error`` after ``n`` calls;
- ``library="missing" | "no_driver"``: ``nvmlInit`` fails as on a GPU-less host;
- ``missing_functions``: C symbols the "driver" lacks (FunctionNotFound);
- ``missing_bindings``: Python functions/constants an older pynvml lacks;
- ``gpm_supported``, ``xid_supported``, and ``inject_xid(i, xid)`` for events.

``mod.calls`` counts calls per C symbol; ``mod.device_calls`` per (symbol,
device); ``mod.state`` is the simulator behind the functions.
"""

from __future__ import annotations

import math
import time
import types
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

# --- constants (values as in nvidia-ml-py 13.x) ------------------------------

CONSTANTS: dict[str, Any] = {
    "NVML_SUCCESS": 0,
    "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_TEMPERATURE_GPU": 0,
    "NVML_CLOCK_GRAPHICS": 0,
    "NVML_CLOCK_SM": 1,
    "NVML_CLOCK_MEM": 2,
    "NVML_MEMORY_ERROR_TYPE_CORRECTED": 0,
    "NVML_MEMORY_ERROR_TYPE_UNCORRECTED": 1,
    "NVML_VOLATILE_ECC": 0,
    "NVML_AGGREGATE_ECC": 1,
    "NVML_PCIE_UTIL_TX_BYTES": 0,
    "NVML_PCIE_UTIL_RX_BYTES": 1,
    "NVML_FI_DEV_MEMORY_TEMP": 82,
    "NVML_VALUE_TYPE_UNSIGNED_INT": 1,
    "NVML_DEVICE_MIG_DISABLE": 0,
    "NVML_DEVICE_MIG_ENABLE": 1,
    "NVML_DEVICE_ARCH_HOPPER": 9,
    "nvmlMemory_v2": 0x02000028,
    "nvmlEventTypeSingleBitEccError": 0x1,
    "nvmlEventTypeDoubleBitEccError": 0x2,
    "nvmlEventTypePState": 0x4,
    "nvmlEventTypeXidCriticalError": 0x8,
    "nvmlEventTypeClock": 0x10,
    "NVML_GPM_METRIC_SM_UTIL": 2,
    "NVML_GPM_METRIC_SM_OCCUPANCY": 3,
    "NVML_GPM_METRIC_ANY_TENSOR_UTIL": 5,
    "NVML_GPM_METRIC_DRAM_BW_UTIL": 10,
    "NVML_GPM_METRICS_GET_VERSION": 1,
    "NVML_GPM_SUPPORT_VERSION": 1,
    "NVML_GPM_METRIC_MAX": 477,
}

GIB = 2**30
H100_TOTAL = 81559 * 2**20  # what an H100 80GB HBM3 reports
H100_RESERVED = 512 * 2**20
H100_POWER_LIMIT_MW = 700_000


# --- the error tree, mapped from codes like pynvml's NVMLError.__new__ -------


class NVMLError(Exception):
    """Base of the fake NVML errors; ``NVMLError(code)`` builds the matching subclass."""

    code: ClassVar[int] = -1
    text: ClassVar[str] = "NVML Error"
    by_code: ClassVar[dict[int, type[NVMLError]]] = {}
    value: int

    def __new__(cls, value: int | None = None) -> NVMLError:
        if cls is NVMLError and value in NVMLError.by_code:
            cls = NVMLError.by_code[value]
        obj = Exception.__new__(cls)
        obj.value = cls.code if value is None else value
        return obj

    def __init__(self, value: int | None = None) -> None:
        super().__init__(self.value)

    def __str__(self) -> str:
        return type(self).text


def _error(name: str, code: int, text: str) -> type[NVMLError]:
    cls = type(f"NVMLError_{name}", (NVMLError,), {"code": code, "text": text})
    NVMLError.by_code[code] = cls
    return cls


NVMLError_Uninitialized = _error("Uninitialized", 1, "Uninitialized")
NVMLError_InvalidArgument = _error("InvalidArgument", 2, "Invalid Argument")
NVMLError_NotSupported = _error("NotSupported", 3, "Not Supported")
NVMLError_NoPermission = _error("NoPermission", 4, "Insufficient Permissions")
NVMLError_NotFound = _error("NotFound", 6, "Not Found")
NVMLError_DriverNotLoaded = _error("DriverNotLoaded", 9, "Driver Not Loaded")
NVMLError_Timeout = _error("Timeout", 10, "Timeout")
NVMLError_LibraryNotFound = _error("LibraryNotFound", 12, "NVML Shared Library Not Found")
NVMLError_FunctionNotFound = _error("FunctionNotFound", 13, "Function Not Found")
NVMLError_GpuIsLost = _error("GpuIsLost", 15, "GPU is lost")
NVMLError_ResetRequired = _error("ResetRequired", 16, "GPU requires restart")
NVMLError_ArgumentVersionMismatch = _error("ArgumentVersionMismatch", 25, "Version Mismatch")
NVMLError_Unknown = _error("Unknown", 999, "Unknown Error")
ERRORS = {c.__name__: c for c in NVMLError.by_code.values()}


# --- returned shapes ----------------------------------------------------------


@dataclass(frozen=True)
class FakeHandle:
    """An opaque device handle: a GPU index and, for a MIG device, its slot."""

    index: int
    mig: int | None = None

    @property
    def key(self) -> str:
        return str(self.index) if self.mig is None else f"{self.index}.mig.{self.mig}"


@dataclass
class Utilization:
    gpu: int
    memory: int


@dataclass
class Memory:
    total: int
    free: int
    used: int
    reserved: int = 0
    version: int = 0


@dataclass
class PciInfo:
    busId: str


@dataclass
class Value:
    uiVal: int = 0
    ullVal: int = 0
    dVal: float = 0.0


@dataclass
class FieldValue:
    fieldId: int
    nvmlReturn: int
    valueType: int = 1
    value: Value = field(default_factory=Value)


@dataclass
class ProcessInfo:
    pid: int
    usedGpuMemory: int | None
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass
class EventData:
    device: FakeHandle
    eventType: int
    eventData: int
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass
class GpmSupport:
    version: int
    isSupportedDevice: int


@dataclass
class GpmSample:
    device: FakeHandle | None = None
    tick: int = 0
    freed: bool = False


@dataclass
class GpmMetric:
    metricId: int = 0
    nvmlReturn: int = 0
    value: float = 0.0


class GpmMetricsGet:
    """Like ``c_nvmlGpmMetricsGet_t``: version, numMetrics, two samples, a metrics array."""

    def __init__(self) -> None:
        self.version = 0
        self.numMetrics = 0
        self.sample1: GpmSample | None = None
        self.sample2: GpmSample | None = None
        # The real struct holds NVML_GPM_METRIC_MAX entries; a few are enough here.
        self.metrics = [GpmMetric() for _ in range(16)]


# --- the simulator ------------------------------------------------------------


@dataclass
class FakeNvmlState:
    """Everything the fake functions read and write; tests reach it as ``mod.state``."""

    device_count: int
    mig_devices: dict[int, int]
    not_supported: dict[str, frozenset[int] | None]
    lost_after: dict[int, int]
    lost_error: type[NVMLError]
    library: str
    missing_functions: frozenset[str]
    gpm_supported: bool
    xid_supported: bool
    pcie_delay_s: float
    processes: dict[int, list[tuple[int, int | None]]]
    calls: Counter[str] = field(default_factory=Counter)
    device_calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    per_device: Counter[int] = field(default_factory=Counter)
    initialized: int = 0
    lost: set[int] = field(default_factory=set)
    energy_mj: dict[int, int] = field(default_factory=dict)
    events: deque[tuple[int, int]] = field(default_factory=deque)
    event_sets: dict[int, set[int]] = field(default_factory=dict)
    gpm_live: int = 0
    tick: int = 0

    def enter(self, name: str, handle: FakeHandle | None = None) -> None:
        """Count a call and raise what this call should raise."""
        self.calls[name] += 1
        if name not in ("nvmlInit", "nvmlInitWithFlags") and not self.initialized:
            raise NVMLError_Uninitialized()
        if name in self.missing_functions:
            raise NVMLError_FunctionNotFound()
        if handle is None:
            return
        self.device_calls[(name, handle.key)] += 1
        i = handle.index
        if i in self.lost:
            raise self.lost_error()
        self.per_device[i] += 1
        limit = self.lost_after.get(i)
        if limit is not None and self.per_device[i] > limit:
            self.lost.add(i)
            raise self.lost_error()
        unsupported = name in self.not_supported and (
            self.not_supported[name] is None or i in (self.not_supported[name] or ())
        )
        if unsupported:
            raise NVMLError_NotSupported()

    def wave(self, i: int, period: float, lo: float, hi: float) -> float:
        """A value between lo and hi that moves with every call (deterministic)."""
        self.tick += 1
        phase = self.tick / period + i * 0.7
        return lo + (hi - lo) * (0.5 + 0.5 * math.sin(phase))


_MIG_OK = frozenset({"nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetUUID"})


class _Functions:
    """The pynvml functions, bound to one state; copied onto the module object."""

    def __init__(self, s: FakeNvmlState) -> None:
        self.s = s

    def _dev(self, name: str, h: FakeHandle) -> None:
        self.s.enter(name, h)
        if h.mig is not None and name not in _MIG_OK:
            raise NVMLError_NotSupported()

    # library and system
    def nvmlInit(self) -> None:
        self.s.enter("nvmlInit")
        if self.s.library == "missing":
            raise NVMLError_LibraryNotFound()
        if self.s.library == "no_driver":
            raise NVMLError_DriverNotLoaded()
        self.s.initialized += 1

    def nvmlShutdown(self) -> None:
        self.s.enter("nvmlShutdown")
        self.s.initialized -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self.s.enter("nvmlSystemGetDriverVersion")
        return "550.90.07"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self.s.enter("nvmlSystemGetCudaDriverVersion")
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        self.s.enter("nvmlDeviceGetCount")
        return self.s.device_count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self.s.enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < self.s.device_count:
            raise NVMLError_InvalidArgument()
        return FakeHandle(index)  # equal for equal devices, like the address NVML returns

    def nvmlDeviceGetIndex(self, h: FakeHandle) -> int:
        self.s.enter("nvmlDeviceGetIndex", h)
        return h.index

    # identity
    def nvmlDeviceGetUUID(self, h: FakeHandle) -> str:
        self._dev("nvmlDeviceGetUUID", h)
        if h.mig is not None:
            return f"MIG-0000{h.index:04x}-{h.mig:04x}-4000-8000-00000000abcd"
        return f"GPU-1f2e3d4c-{h.index:04x}-4a5b-8c7d-00000000beef"

    def nvmlDeviceGetName(self, h: FakeHandle) -> str:
        self._dev("nvmlDeviceGetName", h)
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetPciInfo(self, h: FakeHandle) -> PciInfo:
        self._dev("nvmlDeviceGetPciInfo_v3", h)
        return PciInfo(busId=f"00000000:{0x18 + 0x10 * h.index:02X}:00.0")

    def nvmlDeviceGetArchitecture(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetArchitecture", h)
        return int(CONSTANTS["NVML_DEVICE_ARCH_HOPPER"])

    # default fields
    def nvmlDeviceGetUtilizationRates(self, h: FakeHandle) -> Utilization:
        self._dev("nvmlDeviceGetUtilizationRates", h)
        gpu = round(self.s.wave(h.index, 7.0, 0, 100))
        return Utilization(gpu=gpu, memory=round(gpu * 0.6))

    def nvmlDeviceGetMemoryInfo(self, h: FakeHandle, version: int | None = None) -> Memory:
        self._dev("nvmlDeviceGetMemoryInfo_v2" if version else "nvmlDeviceGetMemoryInfo", h)
        total = H100_TOTAL if h.mig is None else 10 * GIB
        used = int(self.s.wave(h.index, 11.0, 0.01, 0.95) * total) // 2**20 * 2**20
        if version:
            if version != CONSTANTS["nvmlMemory_v2"]:
                raise NVMLError_ArgumentVersionMismatch()
            return Memory(total, total - used, used, H100_RESERVED, version)
        return Memory(total, total - used - H100_RESERVED, used + H100_RESERVED)

    def nvmlDeviceGetPowerUsage(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetPowerUsage", h)
        return round(self.s.wave(h.index, 5.0, 72_000, 690_000))

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetEnforcedPowerLimit", h)
        return H100_POWER_LIMIT_MW

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetTotalEnergyConsumption", h)
        e = self.s.energy_mj.get(h.index, 3_600_000_000 + h.index * 1_000_000)
        e += round(self.s.wave(h.index, 5.0, 72_000, 690_000))  # one second at that power
        self.s.energy_mj[h.index] = e
        return e

    def nvmlDeviceGetTemperatureV(self, h: FakeHandle, sensor: int) -> int:
        self._dev("nvmlDeviceGetTemperatureV", h)
        return round(self.s.wave(h.index, 13.0, 31, 78))

    def nvmlDeviceGetTemperature(self, h: FakeHandle, sensor: int) -> int:
        self._dev("nvmlDeviceGetTemperature", h)
        return round(self.s.wave(h.index, 13.0, 31, 78))

    def nvmlDeviceGetFieldValues(self, h: FakeHandle, ids: list[int]) -> list[FieldValue]:
        self._dev("nvmlDeviceGetFieldValues", h)
        out = []
        for fid in ids:
            if fid == CONSTANTS["NVML_FI_DEV_MEMORY_TEMP"]:
                temp = round(self.s.wave(h.index, 17.0, 34, 85))
                out.append(FieldValue(fid, 0, 1, Value(uiVal=temp)))
            else:
                out.append(FieldValue(fid, NVMLError_NotSupported.code))
        return out

    def nvmlDeviceGetClockInfo(self, h: FakeHandle, clock: int) -> int:
        self._dev("nvmlDeviceGetClockInfo", h)
        if clock == CONSTANTS["NVML_CLOCK_MEM"]:
            return 2619
        return round(self.s.wave(h.index, 9.0, 345, 1980) / 15) * 15

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetCurrentClocksEventReasons", h)
        return (0x0, 0x1, 0x4)[self.s.tick % 3]

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetCurrentClocksThrottleReasons", h)
        return (0x0, 0x1, 0x4)[self.s.tick % 3]

    def nvmlDeviceGetTotalEccErrors(self, h: FakeHandle, error_type: int, counter: int) -> int:
        self._dev("nvmlDeviceGetTotalEccErrors", h)
        return (
            self.s.device_calls[("nvmlDeviceGetTotalEccErrors", h.key)] // 20
            if error_type == 0
            else 0
        )

    def nvmlDeviceGetRemappedRows(self, h: FakeHandle) -> tuple[int, int, int, int]:
        self._dev("nvmlDeviceGetRemappedRows", h)
        return (0, 0, 0, 0)

    def nvmlDeviceGetEncoderUtilization(self, h: FakeHandle) -> list[int]:
        self._dev("nvmlDeviceGetEncoderUtilization", h)
        return [0, 167_000]

    def nvmlDeviceGetDecoderUtilization(self, h: FakeHandle) -> list[int]:
        self._dev("nvmlDeviceGetDecoderUtilization", h)
        return [0, 167_000]

    def nvmlDeviceGetPerformanceState(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetPerformanceState", h)
        return 0

    def nvmlDeviceGetFanSpeed(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetFanSpeed", h)
        return 30

    # opt-in fields
    def nvmlDeviceGetPcieThroughput(self, h: FakeHandle, counter: int) -> int:
        self._dev("nvmlDeviceGetPcieThroughput", h)
        if self.s.pcie_delay_s:
            time.sleep(self.s.pcie_delay_s)  # the driver counts bytes over 20 ms
        return round(self.s.wave(h.index, 3.0, 1_000, 25_000_000))

    def _procs(self, name: str, h: FakeHandle) -> list[ProcessInfo]:
        self._dev(name, h)
        return [ProcessInfo(pid, mem) for pid, mem in self.s.processes.get(h.index, [])]

    def nvmlDeviceGetComputeRunningProcesses_v3(self, h: FakeHandle) -> list[ProcessInfo]:
        return self._procs("nvmlDeviceGetComputeRunningProcesses_v3", h)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, h: FakeHandle) -> list[ProcessInfo]:
        return self._procs("nvmlDeviceGetComputeRunningProcesses_v2", h)

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeHandle) -> list[ProcessInfo]:
        return self._procs("nvmlDeviceGetComputeRunningProcesses_v3", h)

    # MIG
    def nvmlDeviceGetMigMode(self, h: FakeHandle) -> list[int]:
        self.s.enter("nvmlDeviceGetMigMode", h)
        if h.mig is not None:
            raise NVMLError_NotSupported()
        on = int(h.index in self.s.mig_devices)
        return [on, on]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetMaxMigDeviceCount", h)
        return 7 if h.index in self.s.mig_devices else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: FakeHandle, j: int) -> FakeHandle:
        self._dev("nvmlDeviceGetMigDeviceHandleByIndex", h)
        if j >= self.s.mig_devices.get(h.index, 0):
            raise NVMLError_NotFound()
        return FakeHandle(h.index, j)

    # events
    def nvmlEventSetCreate(self) -> int:
        self.s.enter("nvmlEventSetCreate")
        es = len(self.s.event_sets) + 1
        self.s.event_sets[es] = set()
        return es

    def nvmlDeviceGetSupportedEventTypes(self, h: FakeHandle) -> int:
        self._dev("nvmlDeviceGetSupportedEventTypes", h)
        return 0x1F if self.s.xid_supported else 0x17

    def nvmlDeviceRegisterEvents(self, h: FakeHandle, types_: int, es: int) -> None:
        self._dev("nvmlDeviceRegisterEvents", h)
        if types_ & 0x8 and not self.s.xid_supported:
            raise NVMLError_NotSupported()
        self.s.event_sets[es].add(h.index)

    def nvmlEventSetWait(self, es: int, timeout_ms: int) -> EventData:
        self.s.enter("nvmlEventSetWait_v2")
        while self.s.events:
            i, xid = self.s.events.popleft()
            if i in self.s.event_sets.get(es, ()):
                return EventData(FakeHandle(i), 0x8, xid)
        raise NVMLError_Timeout()

    def nvmlEventSetFree(self, es: int) -> None:
        self.s.enter("nvmlEventSetFree")
        del self.s.event_sets[es]

    # GPM
    def nvmlGpmQueryDeviceSupport(self, h: FakeHandle) -> GpmSupport:
        self._dev("nvmlGpmQueryDeviceSupport", h)
        return GpmSupport(1, int(self.s.gpm_supported))

    def nvmlGpmSampleAlloc(self) -> GpmSample:
        self.s.enter("nvmlGpmSampleAlloc")
        self.s.gpm_live += 1
        return GpmSample()

    def nvmlGpmSampleFree(self, sample: GpmSample) -> None:
        self.s.enter("nvmlGpmSampleFree")
        sample.freed = True
        self.s.gpm_live -= 1

    def nvmlGpmSampleGet(self, h: FakeHandle, sample: GpmSample) -> GpmSample:
        self._dev("nvmlGpmSampleGet", h)
        sample.device = h
        sample.tick = self.s.calls["nvmlGpmSampleGet"]
        return sample

    def nvmlGpmMetricsGet(self, mg: GpmMetricsGet) -> GpmMetricsGet:
        self.s.enter("nvmlGpmMetricsGet")
        s1, s2 = mg.sample1, mg.sample2
        if s1 is None or s2 is None or s1.device is None or s1.device != s2.device:
            raise NVMLError_InvalidArgument()
        if s2.tick <= s1.tick:
            raise NVMLError_InvalidArgument()  # samples out of order
        i = s1.device.index
        for m in mg.metrics[: mg.numMetrics]:
            m.nvmlReturn = 0
            m.value = self.s.wave(i, 7.0 + m.metricId, 0.0, 100.0)
        return mg


def make_fake_nvml(
    *,
    device_count: int = 8,
    mig_devices: Mapping[int, int] | None = None,
    not_supported: Mapping[str, Iterable[int] | None] | None = None,
    lost_after: Mapping[int, int] | None = None,
    lost_error: str = "GpuIsLost",
    library: str = "ok",
    missing_functions: Iterable[str] = (),
    missing_bindings: Iterable[str] = (),
    gpm_supported: bool = True,
    xid_supported: bool = True,
    pcie_delay_s: float = 0.0,
    processes: Mapping[int, list[tuple[int, int | None]]] | None = None,
) -> types.ModuleType:
    """A fresh fake ``pynvml`` module. By default: 8 H100s whose fan speed is NotSupported."""
    if not_supported is None:
        not_supported = {"nvmlDeviceGetFanSpeed": None}  # H100 SXM: no fan of its own
    state = FakeNvmlState(
        device_count=device_count,
        mig_devices=dict(mig_devices or {}),
        not_supported={k: None if v is None else frozenset(v) for k, v in not_supported.items()},
        lost_after=dict(lost_after or {}),
        lost_error=ERRORS[f"NVMLError_{lost_error}"],
        library=library,
        missing_functions=frozenset(missing_functions),
        gpm_supported=gpm_supported,
        xid_supported=xid_supported,
        pcie_delay_s=pcie_delay_s,
        processes={
            k: list(v)
            for k, v in (
                processes if processes is not None else {0: [(4242, 30 * GIB), (4243, 2 * GIB)]}
            ).items()
        },
    )
    mod = types.ModuleType("pynvml", "fake pynvml (tests/collectors/fake_pynvml.py)")
    skip = set(missing_bindings)
    for name, value in CONSTANTS.items():
        if name not in skip:
            setattr(mod, name, value)
    mod.NVMLError = NVMLError  # type: ignore[attr-defined]
    for name, cls in ERRORS.items():
        setattr(mod, name, cls)
    if "c_nvmlGpmMetricsGet_t" not in skip:
        mod.c_nvmlGpmMetricsGet_t = GpmMetricsGet  # type: ignore[attr-defined]
    fns = _Functions(state)
    for name in dir(_Functions):
        if name.startswith("nvml") and name not in skip:
            setattr(mod, name, getattr(fns, name))
    mod.state = state  # type: ignore[attr-defined]
    mod.calls = state.calls  # type: ignore[attr-defined]
    mod.device_calls = state.device_calls  # type: ignore[attr-defined]
    mod.inject_xid = lambda i, xid: state.events.append((i, xid))  # type: ignore[attr-defined]
    return mod
