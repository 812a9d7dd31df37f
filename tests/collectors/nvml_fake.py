"""The fake NVML C library (``fake_nvml.c``), built with the system C compiler and
installed under the real ``pynvml`` as its ``nvmlLib``.

``build_library()`` compiles ``fake_nvml.c`` once per source version into a
cache directory; ``FakeNvml(lib)`` declares every C function's prototype from
nvml.h as ctypes ``argtypes`` (so ctypes checks what pynvml passes), fills the
devices with H100-like values that differ per device and per field, and
``install(pynvml)`` makes pynvml's own ``_nvmlGetFunctionPointer`` find them:
the collector runs through pynvml's real wrappers, struct definitions and
error classes. ``hide`` names C symbols the "driver" lacks (pynvml then raises
``NVMLError_FunctionNotFound``, as with an older driver).

Everything the tests need to script is a method: ``set`` (a value of a GPU),
``field`` (one nvmlFieldValue_t answer), ``fail`` (the next calls of a C
function answer an error), ``mig_add`` / ``mig_destroy``, ``proc_add``,
``putil_add``, ``xid``, ``gpm`` and ``clock_ns``; ``calls`` counts C calls per
GPU. ``expected_field`` / ``knob`` / ``gpm_value`` return what the fake answers.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from ctypes import POINTER, c_char, c_char_p, c_double, c_int, c_longlong, c_uint, c_ulonglong
from ctypes import c_void_p as P
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

SOURCE = Path(__file__).with_name("fake_nvml.c")
UINT_MAX = 0xFFFFFFFF
MIB = 2**20
GIB = 2**30

# NVML return codes (nvml.h)
SUCCESS = 0
UNINITIALIZED = 1
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
INSUFFICIENT_SIZE = 7
DRIVER_NOT_LOADED = 9
TIMEOUT = 10
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
RESET_REQUIRED = 16
LIB_RM_VERSION_MISMATCH = 18
ARGUMENT_VERSION_MISMATCH = 25
UNKNOWN = 999

# nvmlValueType_t
DOUBLE, UINT, ULONG, ULL, SLL, SINT, USHORT = range(7)

XID_EVENT = 0x8  # nvmlEventTypeXidCriticalError
ARCH_AMPERE, ARCH_HOPPER = 7, 9

_PU, _PULL, _PI, _BUF = POINTER(c_uint), POINTER(c_ulonglong), POINTER(c_int), POINTER(c_char)

# (restype, argtypes) of every C function the fake exports, from nvml.h. Struct
# pointers and handles are void*: the C side reads them with nvml.h's layouts.
PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "nvmlInitWithFlags": (c_int, [c_uint]),
    "nvmlInit_v2": (c_int, []),
    "nvmlShutdown": (c_int, []),
    "nvmlErrorString": (c_char_p, [c_int]),
    "nvmlSystemGetDriverVersion": (c_int, [_BUF, c_uint]),
    "nvmlSystemGetCudaDriverVersion": (c_int, [_PI]),
    "nvmlSystemGetCudaDriverVersion_v2": (c_int, [_PI]),
    "nvmlDeviceGetCount_v2": (c_int, [_PU]),
    "nvmlDeviceGetHandleByIndex_v2": (c_int, [c_uint, P]),
    "nvmlDeviceGetUUID": (c_int, [P, _BUF, c_uint]),
    "nvmlDeviceGetName": (c_int, [P, _BUF, c_uint]),
    "nvmlDeviceGetPciInfo_v3": (c_int, [P, P]),
    "nvmlDeviceGetArchitecture": (c_int, [P, _PU]),
    "nvmlDeviceGetFieldValues": (c_int, [P, c_int, P]),
    "nvmlDeviceGetMemoryInfo": (c_int, [P, P]),
    "nvmlDeviceGetMemoryInfo_v2": (c_int, [P, P]),
    "nvmlDeviceGetUtilizationRates": (c_int, [P, P]),
    "nvmlDeviceGetTemperatureV": (c_int, [P, P]),
    "nvmlDeviceGetTemperature": (c_int, [P, c_uint, _PU]),
    "nvmlDeviceGetClockInfo": (c_int, [P, c_uint, _PU]),
    "nvmlDeviceGetEncoderUtilization": (c_int, [P, _PU, _PU]),
    "nvmlDeviceGetDecoderUtilization": (c_int, [P, _PU, _PU]),
    "nvmlDeviceGetPowerUsage": (c_int, [P, _PU]),
    "nvmlDeviceGetEnforcedPowerLimit": (c_int, [P, _PU]),
    "nvmlDeviceGetFanSpeed": (c_int, [P, _PU]),
    "nvmlDeviceGetPerformanceState": (c_int, [P, _PU]),
    "nvmlDeviceGetCurrentClocksEventReasons": (c_int, [P, _PULL]),
    "nvmlDeviceGetCurrentClocksThrottleReasons": (c_int, [P, _PULL]),
    "nvmlDeviceGetTotalEnergyConsumption": (c_int, [P, _PULL]),
    "nvmlDeviceGetPcieThroughput": (c_int, [P, c_uint, _PU]),
    "nvmlDeviceGetTotalEccErrors": (c_int, [P, c_uint, c_uint, _PULL]),
    "nvmlDeviceGetRemappedRows": (c_int, [P, _PU, _PU, _PU, _PU]),
    "nvmlDeviceGetMigMode": (c_int, [P, _PU, _PU]),
    "nvmlDeviceGetMaxMigDeviceCount": (c_int, [P, _PU]),
    "nvmlDeviceGetMigDeviceHandleByIndex": (c_int, [P, c_uint, P]),
    "nvmlDeviceGetGpuInstanceId": (c_int, [P, _PU]),
    "nvmlDeviceGetComputeInstanceId": (c_int, [P, _PU]),
    "nvmlDeviceGetComputeRunningProcesses_v3": (c_int, [P, _PU, P]),
    "nvmlDeviceGetGraphicsRunningProcesses_v3": (c_int, [P, _PU, P]),
    "nvmlDeviceGetComputeRunningProcesses_v2": (c_int, [P, _PU, P]),
    "nvmlDeviceGetGraphicsRunningProcesses_v2": (c_int, [P, _PU, P]),
    "nvmlDeviceGetProcessUtilization": (c_int, [P, P, _PU, c_ulonglong]),
    "nvmlEventSetCreate": (c_int, [P]),
    "nvmlDeviceGetSupportedEventTypes": (c_int, [P, _PULL]),
    "nvmlDeviceRegisterEvents": (c_int, [P, c_ulonglong, P]),
    "nvmlEventSetWait_v2": (c_int, [P, P, c_uint]),
    "nvmlEventSetFree": (c_int, [P]),
    "nvmlGpmQueryDeviceSupport": (c_int, [P, P]),
    "nvmlGpmSampleAlloc": (c_int, [P]),
    "nvmlGpmSampleFree": (c_int, [P]),
    "nvmlGpmSampleGet": (c_int, [P, P]),
    "nvmlGpmMigSampleGet": (c_int, [P, c_uint, P]),
    "nvmlGpmMetricsGet": (c_int, [P]),
}

_CONTROL: dict[str, tuple[Any, list[Any]]] = {
    "fk_reset": (None, [c_int]),
    "fk_set": (c_int, [c_int, c_char_p, c_double]),
    "fk_set_clock": (c_int, [c_longlong]),
    "fk_set_str": (c_int, [c_int, c_char_p, c_char_p]),
    "fk_field": (c_int, [c_int, c_uint, c_uint, c_int, c_int, c_ulonglong, c_longlong]),
    "fk_fail": (c_int, [c_char_p, c_int, c_int, c_int, c_int]),
    "fk_clear_rules": (c_int, []),
    "fk_mig_add": (c_int, [c_int, c_uint, c_uint, c_char_p, c_ulonglong, c_ulonglong, c_ulonglong]),
    "fk_mig_destroy": (c_int, [c_int, c_int]),
    "fk_proc_add": (c_int, [c_int, c_uint, c_uint, c_uint, c_ulonglong, c_int]),
    "fk_putil_add": (c_int, [c_int, c_uint, c_ulonglong, c_uint, c_uint, c_uint, c_uint]),
    "fk_event": (c_int, [c_int, c_ulonglong, c_ulonglong, c_uint, c_uint]),
    "fk_gpm": (c_int, [c_int, c_int, c_uint, c_int, c_double]),
    "fk_calls": (ctypes.c_ulong, [c_char_p, c_int]),
    "fk_call_name": (c_char_p, [c_int]),
    "fk_initialized": (c_int, []),
    "fk_live_samples": (c_int, []),
    "fk_live_sets": (c_int, []),
}


class CompilerMissing(RuntimeError):
    """No C compiler on this machine: the fake NVML library cannot be built."""


def build_library(cache_dir: Path | None = None) -> Path:
    """Compile fake_nvml.c (once per source version) and return the .so path.

    Raises ``CompilerMissing`` without a C compiler, ``CalledProcessError`` if it fails.
    """
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    cache = cache_dir or Path(tempfile.gettempdir()) / f"snapcloud-fake-nvml-{os.getuid()}"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"libfake-nvml-{digest}.so"
    if out.exists():
        return out
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise CompilerMissing("no C compiler (cc/gcc) to build tests/collectors/fake_nvml.c")
    tmp = cache / f".{out.name}.{os.getpid()}"
    cmd = [
        cc,
        "-shared",
        "-fPIC",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-o",
        str(tmp),
        str(SOURCE),
    ]
    subprocess.run([*cmd, "-lm", "-lpthread"], check=True, capture_output=True)
    os.replace(tmp, out)
    return out


def load_library(path: Path) -> ctypes.CDLL:
    """``CDLL(path)`` with every NVML and control prototype declared."""
    lib = ctypes.CDLL(str(path))
    for name, (restype, argtypes) in {**PROTOTYPES, **_CONTROL}.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


class _Driver:
    """``nvmlLib`` as pynvml sees it: the fake's symbols, less the ``hidden`` ones."""

    def __init__(self, lib: ctypes.CDLL, hidden: frozenset[str]) -> None:
        self._lib = lib
        self._hidden = hidden

    def __getattr__(self, name: str) -> Any:
        if name in self._hidden:
            raise AttributeError(name)  # what CDLL raises for a symbol the library lacks
        return getattr(self._lib, name)


@dataclass(frozen=True)
class FieldAnswer:
    """What the fake answers for one (GPU, field id, scope id)."""

    ret: int
    vtype: int
    value: float
    latency: int


def _bits(vtype: int, value: float) -> int:
    if vtype == DOUBLE:
        return int.from_bytes(struct.pack("<d", value), "little")
    return int(value) & 0xFFFFFFFFFFFFFFFF


# Field ids (nvml.h) and the H100-like answers of GPU i: (field, scope, type, value of GPU 0).
NVLINK_LINKS = 18
_H100_FIELDS: list[tuple[int, int, int, float]] = [
    (82, 0, UINT, 45),  # MEMORY_TEMP
    (83, 0, ULL, 3_600_000_000),  # TOTAL_ENERGY_CONSUMPTION
    (185, 0, UINT, 301_000),  # POWER_AVERAGE, GPU scope
    (186, 0, UINT, 305_007),  # POWER_INSTANT
    (190, 0, UINT, 700_000),  # POWER_CURRENT_LIMIT
    (3, 0, ULL, 1_011),  # ECC_SBE_VOL_TOTAL
    (4, 0, ULL, 1_003),  # ECC_DBE_VOL_TOTAL
    (5, 0, ULL, 9_091),  # ECC_SBE_AGG_TOTAL
    (6, 0, ULL, 9_023),  # ECC_DBE_AGG_TOTAL
    (142, 0, UINT, 21),  # REMAPPED_COR
    (143, 0, UINT, 13),  # REMAPPED_UNC
    (94, 0, UINT, 77),  # PCIE_REPLAY_COUNTER
    (74, 0, ULL, 7_400_000),  # PERF_POLICY_POWER (ns)
    (75, 0, ULL, 7_500_000),  # PERF_POLICY_THERMAL
    (76, 0, ULL, 7_600_000),  # PERF_POLICY_SYNC_BOOST
    (77, 0, ULL, 7_700_000),  # PERF_POLICY_BOARD_LIMIT
    (78, 0, ULL, 7_800_000),  # PERF_POLICY_LOW_UTILIZATION
    (79, 0, ULL, 7_900_000),  # PERF_POLICY_RELIABILITY
    (269, 0, ULL, 26_900_000),  # CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN
    (270, 0, ULL, 27_000_000),  # ..._HW_THERM_SLOWDOWN
    (271, 0, ULL, 27_100_000),  # ..._HW_POWER_BRAKE_SLOWDOWN
    (91, 0, UINT, NVLINK_LINKS),  # NVLINK_LINK_COUNT
    (138, UINT_MAX, ULL, 9_000_000),  # NVLINK_THROUGHPUT_DATA_TX, all links
    (139, UINT_MAX, ULL, 8_000_000),  # NVLINK_THROUGHPUT_DATA_RX, all links
    (38, 0, ULL, 3_800),  # NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL
    (45, 0, ULL, 4_500),  # NVLINK_CRC_DATA_ERROR_COUNT_TOTAL
    (52, 0, ULL, 5_200),  # NVLINK_REPLAY_ERROR_COUNT_TOTAL
    (59, 0, ULL, 5_900),  # NVLINK_RECOVERY_ERROR_COUNT_TOTAL
]
# Per-link fields (scopeId = link): value of GPU 0, link 0; + 100 per link.
_H100_LINK_FIELDS: list[tuple[int, int, float]] = [
    (138, ULL, 500_000),
    (139, ULL, 400_000),
    (161, ULL, 16_100),  # NVLINK_ERROR_DL_REPLAY
    (162, ULL, 16_200),  # NVLINK_ERROR_DL_RECOVERY
    (163, ULL, 16_300),  # NVLINK_ERROR_DL_CRC
]
_H100_GPM: dict[int, float] = {
    1: 3.25,  # GRAPHICS_UTIL
    2: 6.25,  # SM_UTIL
    3: 9.25,  # SM_OCCUPANCY
    5: 15.25,  # ANY_TENSOR_UTIL
    10: 30.25,  # DRAM_BW_UTIL
    20: 2_000.5,  # PCIE_TX_PER_SEC (MiB/s)
    21: 3_000.5,  # PCIE_RX_PER_SEC
    60: 40_000.5,  # NVLINK_TOTAL_RX_PER_SEC
    61: 50_000.5,  # NVLINK_TOTAL_TX_PER_SEC
}
H100_NAME = "NVIDIA H100 80GB HBM3"
H100_FB_TOTAL = 81_559 * MIB


def h100_knobs(i: int) -> dict[str, float]:
    """The struct-call values of H100-like GPU ``i``: each differs per device and per field."""
    return {
        "util_gpu": 11 + i,
        "util_mem": 31 + i,
        "fb_total": H100_FB_TOTAL,
        "fb_reserved": (512 + i) * MIB,
        "fb_used": (1_000 + 100 * i) * MIB,
        "temp_gpu": 41 + i,
        "clk_graphics": 1_695 + i,
        "clk_sm": 1_980 - i,
        "clk_mem": 2_619 - i,
        "clk_video": 1_500 + i,
        "enc": 7 + i,
        "enc_period": 167_000,
        "dec": 3 + i,
        "dec_period": 167_001,
        "power_usage": 312_000 + 1_000 * i,
        "power_limit": 699_000 - 1_000 * i,
        "pstate": i % 16,
        "clock_reasons": 1 << (i % 9),
        "pcie_tx": 1_000 + 10 * i,
        "pcie_rx": 5_000 + 10 * i,
        "energy": 3_500_000_000 + 1_000 * i,
        "arch": ARCH_HOPPER,
        "pci_devid": 0x233010DE,
        "mig_capable": 1,
        "gpm": 1,
        "events_supported": 0x1F,
    }


class FakeNvml:
    """The fake library, its state and the pynvml it is installed in."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.knobs: dict[int, dict[str, float]] = {}
        self.fields: dict[tuple[int, int, int], FieldAnswer] = {}
        self.gpm_values: dict[tuple[int, int, int], tuple[int, float]] = {}
        self.gpus = 0
        self._pynvml: ModuleType | None = None
        self._saved: tuple[Any, dict[str, Any]] | None = None

    # --- set-up -----------------------------------------------------------

    def reset(self, gpus: int = 8, *, nvlink_links: int = NVLINK_LINKS) -> FakeNvml:
        """``gpus`` H100-like GPUs, every value distinct per device and per field."""
        self.lib.fk_reset(gpus)
        self.gpus = gpus
        self.knobs.clear()
        self.fields.clear()
        self.gpm_values.clear()
        for i in range(gpus):
            for key, value in h100_knobs(i).items():
                self.set(i, key, value)
            self.set_str(i, "name", H100_NAME)
            self.set_str(i, "uuid", f"GPU-1f2e3d4c-{i:04x}-4a5b-8c7d-00000000beef")
            self.set_str(i, "busid", f"00000000:{0x18 + 0x10 * i:02X}:00.0")
            for fid, scope, vtype, v0 in _H100_FIELDS:
                value = nvlink_links if fid == 91 else v0 + 10 * i
                self.field(i, fid, scope, value, vtype, latency=10 + fid % 50 + i)
            self.field(i, 144, 0, i % 2, UINT, latency=5)  # REMAPPED_PENDING
            self.field(i, 145, 0, 1 - i % 2, UINT, latency=5)  # REMAPPED_FAILURE
            for link in range(nvlink_links):
                for fid, vtype, v0 in _H100_LINK_FIELDS:
                    self.field(i, fid, link, v0 + 100 * link + 10 * i, vtype, latency=30)
            for metric, v0 in _H100_GPM.items():
                self.gpm(i, -1, metric, v0 + i)
        return self

    def set(self, gpu: int, key: str, value: float) -> None:
        """A value of ``gpu`` (or, gpu -1, of the library: device_count, init_ret, root...)."""
        if self.lib.fk_set(gpu, key.encode(), float(value)) != 0:
            raise KeyError(key)
        if gpu >= 0:
            self.knobs.setdefault(gpu, {})[key] = value

    def unsupported(self, gpu: int, key: str) -> None:
        """The call behind ``key`` answers NotSupported on ``gpu``."""
        self.set(gpu, key, float("nan"))

    def set_str(self, gpu: int, key: str, value: str) -> None:
        """``driver`` (gpu -1), or a GPU's ``name``, ``uuid`` or ``busid``."""
        if self.lib.fk_set_str(gpu, key.encode(), value.encode()) != 0:
            raise KeyError(key)

    def field(
        self,
        gpu: int,
        fid: int,
        scope: int,
        value: float,
        vtype: int = ULL,
        *,
        ret: int = SUCCESS,
        latency: int = 10,
    ) -> None:
        """What nvmlDeviceGetFieldValues answers for (gpu, fid, scope)."""
        if self.lib.fk_field(gpu, fid, scope, ret, vtype, _bits(vtype, value), latency) != 0:
            raise RuntimeError("fake NVML field table full")
        self.fields[(gpu, fid, scope)] = FieldAnswer(ret, vtype, value, latency)

    def field_fails(self, gpu: int, fid: int, scope: int, ret: int) -> None:
        """(gpu, fid, scope) answers ``ret`` in its nvmlFieldValue_t."""
        old = self.fields.get((gpu, fid, scope), FieldAnswer(ret, ULL, 0, 10))
        self.field(gpu, fid, scope, old.value, old.vtype, ret=ret, latency=old.latency)

    def fail(self, fn: str, code: int, *, gpu: int = -1, gi: int = -1, times: int = -1) -> None:
        """The next ``times`` calls (-1: all) of C function ``fn`` answer ``code``.

        ``gpu`` -1: any GPU; ``gi`` -1: any handle, -2: GPU handles only, >= 0: the
        MIG devices of that GPU instance.
        """
        if self.lib.fk_fail(fn.encode(), gpu, gi, code, times) != 0:
            raise RuntimeError("fake NVML rule table full")

    def clear_failures(self) -> None:
        """Drop every ``fail`` rule."""
        self.lib.fk_clear_rules()

    def mig_add(
        self, gpu: int, gi: int, ci: int, profile: str = "1g.10gb", *, total: int = 10 * GIB
    ) -> int:
        """A MIG device (GPU instance ``gi``, compute instance ``ci``); returns its slot."""
        name = f"{H100_NAME} MIG {profile}"
        used = (100 + gi) * MIB
        slot = int(self.lib.fk_mig_add(gpu, gi, ci, name.encode(), total, used, 32 * MIB))
        if slot < 0:
            raise RuntimeError("no free MIG slot")
        self.set(gpu, "mig_on", 1)
        return slot

    def mig_destroy(self, gpu: int, gi: int = -1) -> int:
        """Destroy GPU instance ``gi`` (-1: all) of ``gpu``; its handles go stale."""
        return int(self.lib.fk_mig_destroy(gpu, gi))

    def proc_add(
        self,
        gpu: int,
        pid: int,
        mem: int | None,
        *,
        graphics: bool = False,
        gi: int = UINT_MAX,
        ci: int = UINT_MAX,
    ) -> None:
        """A process on ``gpu`` (``mem`` None: NVML cannot tell, ULLONG_MAX)."""
        used = 0xFFFFFFFFFFFFFFFF if mem is None else mem
        self.lib.fk_proc_add(gpu, gi, ci, pid, used, int(graphics))

    def putil_add(self, gpu: int, pid: int, ts_us: int, sm: int, mem: int) -> None:
        """A per-process utilisation sample (enc/dec 0) at ``ts_us``."""
        self.lib.fk_putil_add(gpu, pid, ts_us, sm, mem, 0, 0)

    def xid(self, gpu: int, code: int, gi: int = UINT_MAX, ci: int = UINT_MAX) -> None:
        """An XID critical-error event on ``gpu``."""
        self.lib.fk_event(gpu, XID_EVENT, code, gi, ci)

    def gpm(self, gpu: int, gi: int, metric: int, value: float, *, ret: int = SUCCESS) -> None:
        """GPM ``metric`` of ``gpu`` (``gi`` -1: the whole GPU, else a GPU instance)."""
        self.lib.fk_gpm(gpu, gi, metric, ret, float(value))
        self.gpm_values[(gpu, gi, metric)] = (ret, float(value))

    def clock_ns(self, ns: int) -> None:
        """The library's clock (GPM sample times, field timestamps); -1: CLOCK_MONOTONIC."""
        self.lib.fk_set_clock(ns)

    # --- reading back -------------------------------------------------------

    def knob(self, gpu: int, key: str) -> float:
        """The struct-call value the fake gives ``gpu`` for ``key``."""
        return self.knobs[gpu][key]

    def expected_field(self, gpu: int, fid: int, scope: int = 0) -> float:
        """The value of a field answering NVML_SUCCESS."""
        answer = self.fields[(gpu, fid, scope)]
        assert answer.ret == SUCCESS, (gpu, fid, scope, answer)
        return answer.value

    def gpm_value(self, gpu: int, metric: int, gi: int = -1) -> float:
        """The GPM value the fake computes for ``metric`` between two samples."""
        return self.gpm_values[(gpu, gi, metric)][1]

    def calls(self, fn: str = "", gpu: int = -2) -> int:
        """Calls of C function ``fn`` ("": all) on ``gpu`` (-1: host-level, -2: all)."""
        return int(self.lib.fk_calls(fn.encode(), gpu))

    def nvml_calls(self, gpu: int = -2) -> int:
        """NVML calls (the fake's own counters left out) on ``gpu`` (-1: host, -2: all)."""
        return sum(self.calls_by_function(gpu).values())

    def call_names(self) -> list[str]:
        """Every C function called since the reset (plus the fake's own counters)."""
        out: list[str] = []
        while (name := self.lib.fk_call_name(len(out))) is not None:
            out.append(name.decode())
        return out

    def calls_by_function(self, gpu: int = -2) -> dict[str, int]:
        """NVML calls per C function on ``gpu``, the fake's own counters left out."""
        out = {name: self.calls(name, gpu) for name in self.call_names()}
        return {k: v for k, v in out.items() if k.startswith("nvml") and v}

    @property
    def initialized(self) -> int:
        """nvmlInit calls not yet matched by nvmlShutdown."""
        return int(self.lib.fk_initialized())

    @property
    def live_gpm_samples(self) -> int:
        """GPM sample buffers allocated and not freed."""
        return int(self.lib.fk_live_samples())

    @property
    def live_event_sets(self) -> int:
        """Event sets created and not freed."""
        return int(self.lib.fk_live_sets())

    # --- pynvml -------------------------------------------------------------

    def install(self, pynvml: ModuleType, hide: Iterable[str] = ()) -> None:
        """Make ``pynvml`` call this library (lacking the ``hide`` symbols)."""
        if self._saved is None:
            self._saved = (pynvml.nvmlLib, dict(pynvml._nvmlGetFunctionPointer_cache))
        self._pynvml = pynvml
        pynvml.nvmlLib = _Driver(self.lib, frozenset(hide))
        pynvml._nvmlGetFunctionPointer_cache.clear()

    def uninstall(self) -> None:
        """Give ``pynvml`` back its own library (none, on a host without NVIDIA)."""
        if self._pynvml is None or self._saved is None:
            return
        lib, cache = self._saved
        self._pynvml.nvmlLib = lib
        self._pynvml._nvmlGetFunctionPointer_cache.clear()
        self._pynvml._nvmlGetFunctionPointer_cache.update(cache)
        self._pynvml = None
        self._saved = None
