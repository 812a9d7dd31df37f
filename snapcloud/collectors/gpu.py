"""NVIDIA GPU metrics through NVML (``pynvml``, from the nvidia-ml-py package).

``GpuCollector`` initialises NVML, opens every GPU (its handle, identity,
MIG layout, NVLink count and GPM support) and binds its readings: one
``nvmlDeviceGetFieldValues`` call for every field NVML carries there, one call
for each reading that has no field id, GPM on Hopper and newer, and the
opt-in groups. What NVML answers decides what happens (docs/GPU.md)::

    NotSupported, NotFound, NoPermission   that reading (or field) is dropped
                                           for the device, logged once
    FunctionNotFound, ArgumentVersionMismatch, a binding this pynvml lacks
                                           the reading's older call, else dropped
    InvalidArgument                        an ERROR, logged once; the sample skips
                                           it and the GPU is re-enumerated soon
                                           (a MIG handle goes stale when its
                                           instance is destroyed)
    GpuIsLost (from a reading)             the rest of that GPU's sample is
                                           skipped and its handle checked
    Unknown, ResetRequired (a reading)     that reading is skipped this sample,
                                           the handle checked
    Uninitialized, DriverNotLoaded,        NVML is shut down and initialised again
    LibRmVersionMismatch
    anything else (Timeout, ...)           skipped this sample, logged once

A GPU is lost only when NVML refuses its handle (``nvmlDeviceGetHandleByIndex``
answers GpuIsLost, Unknown or ResetRequired): ``gpu.<i>.lost`` is 1 and the
label ``gpu.<i>.lost`` is ``true``. Every ``recheck_s`` (and soon after an
error that asks for it) the collector re-enumerates: driver version, device
count, each GPU's handle, UUID and MIG layout; a GPU whose facts changed is
opened again, labels included; while a GPU is lost, NVML is re-initialised.

A host without NVML (no ``pynvml``, no ``libnvidia-ml.so``, no driver, no
device) gives a collector whose ``available`` is False and whose ``reason``
is one line for the caller to log.

Run ``python -m snapcloud.collectors.gpu --samples 10`` on a GPU host to see
what this machine supports and what a sample costs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import statistics
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from snapcloud.collectors._base import Sample
from snapcloud.collectors._nvml import (
    ARCH_NAMES,
    CALL_FIELD,
    CALL_FIELDS,
    FALLBACK,
    FIELD_VALUES,
    FLAKY,
    GONE,
    INVALID,
    MIG_FIELDS,
    NVLINK_FIELD_VALUES,
    NVLINK_LINK_COUNT,
    REINIT,
    UINT_MAX,
    UNSUPPORTED,
    Call,
    FieldBatch,
    Gpm,
    Processes,
    classify,
    error_code,
    field_values,
    handle_key,
    init_reason,
    nvlink_link_fields,
    power_usage_field,
    power_usage_is_average,
    text,
)
from snapcloud.errors import ValidationError

__all__ = ["OPT_IN", "GpuCollector", "main"]

_log = logging.getLogger(__name__)

OPT_IN: frozenset[str] = frozenset({"pcie", "processes", "state", "nvlink_links"})
"""Field groups sampled only when asked: each costs more than the defaults (docs/GPU.md)."""

# Opt-in groups of earlier versions that are sampled by default now: still accepted.
_NOW_DEFAULT = frozenset({"xid", "gpm"})
_XID = 0x8  # nvmlEventTypeXidCriticalError
_TIMEOUT = 10  # NVML_ERROR_TIMEOUT: no event pending
_MAX_EVENTS_PER_COLLECT = 64
_RECHECK_SOON_S = 5.0


@dataclass(eq=False)
class _Mig:
    """A GPU instance of a MIG-enabled GPU: what its MIG devices answer, named by its id."""

    gpu_instance: int
    prefix: str
    handle: Any  # its first MIG device (compute instance): memory is per GPU instance
    readings: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class _Gpu:
    """One GPU: its handle, facts and bound readings."""

    index: int
    prefix: str
    handle: Any = None
    uuid: str = ""
    lost: bool = False
    suspect: bool = False  # a reading said GpuIsLost / Unknown: check the handle
    stop: bool = False  # set during a sample: read nothing more of this GPU now
    arch: int | None = None
    pci_device_id: int | None = None
    mig_layout: tuple[tuple[int, int, str, str], ...] | None = None  # None: MIG off
    mig_handles: list[Any] = field(default_factory=list)
    readings: list[Any] = field(default_factory=list)
    migs: list[_Mig] = field(default_factory=list)
    xid: bool = False

    def targets(self) -> list[tuple[str, Any, list[Any]]]:
        """(prefix, handle, readings) of the GPU and of each GPU instance."""
        return [(self.prefix, self.handle, self.readings)] + [
            (m.prefix, m.handle, m.readings) for m in self.migs
        ]


class GpuCollector:
    """Samples every NVIDIA GPU (and MIG GPU instance) on the host through NVML.

    ``nvml`` is the module to call (default: ``import pynvml``); ``opt_in``
    names extra field groups from :data:`OPT_IN`; ``recheck_s`` is how often
    the GPUs are re-enumerated; ``clock`` is the monotonic clock (tests).
    Never raises for a missing library, driver or device: ``available`` is then
    False and ``reason`` says why in one line. Raises ``ValidationError`` for an
    unknown ``opt_in`` name or a ``recheck_s`` that is not positive.
    """

    name = "gpu"

    def __init__(
        self,
        nvml: Any | None = None,
        *,
        opt_in: Iterable[str] = frozenset(),
        recheck_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        asked = frozenset(opt_in)
        unknown = sorted(asked - OPT_IN - _NOW_DEFAULT)
        if unknown:
            raise ValidationError(
                f"opt_in: unknown field group(s) {unknown}; known: {sorted(OPT_IN)}", field="opt_in"
            )
        if not recheck_s > 0:
            raise ValidationError(f"recheck_s: {recheck_s!r} is not positive", field="recheck_s")
        self.opt_in = asked & OPT_IN
        self.recheck_s = float(recheck_s)
        self.available = False
        self.reason = ""
        self._clock = clock
        self._gpus: list[_Gpu] = []
        self._labels: dict[str, str] = {}
        self._logged: set[tuple[Any, ...]] = set()
        self._unsupported: dict[str, set[str]] = {}
        self._initialized = False
        self._closed = False
        self._driver = ""
        self._events: Any = None
        self._by_handle: dict[Hashable, _Gpu] = {}
        self._xid_counts: dict[int, int] = {}
        self._reinit_due = False
        self._last_recheck = 0.0
        self._next_recheck = 0.0
        self._ctx: tuple[_Gpu, str] | None = None
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError:
                self.reason = (
                    "NVML library not found: pynvml (nvidia-ml-py) is not installed: "
                    "no GPU collector"
                )
                return
        self._nv: Any = nvml
        try:
            self.reason = self._open()
        except BaseException:
            self._release()  # a failure past nvmlInit must not leave NVML initialised
            raise
        self.available = not self.reason

    @classmethod
    def open(
        cls,
        nvml: Any | None = None,
        *,
        opt_in: Iterable[str] = frozenset(),
        recheck_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> GpuCollector:
        """Initialise NVML and open every GPU; check ``available`` / ``reason`` after."""
        return cls(nvml, opt_in=opt_in, recheck_s=recheck_s, clock=clock)

    def __enter__(self) -> GpuCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- opening -------------------------------------------------------------

    def _open(self) -> str:
        """Initialise NVML and open every GPU; the reason there is no collector, or ""."""
        nv = self._nv
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            return init_reason(error_code(exc), exc)
        self._initialized = True
        try:
            count = int(nv.nvmlDeviceGetCount())
            self._driver = text(nv.nvmlSystemGetDriverVersion())
        except nv.NVMLError as exc:
            self._shutdown()
            return f"NVML cannot list devices ({exc}): no GPU collector"
        if count == 0:
            self._shutdown()
            return "no NVIDIA GPU found (NVML reports 0 devices): no GPU collector"
        self._labels = {"driver_version": self._driver, "gpu.count": str(count)}
        try:
            cuda = int(nv.nvmlSystemGetCudaDriverVersion())
            self._labels["cuda_version"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        except (nv.NVMLError, AttributeError) as exc:
            _log.info("gpu: CUDA driver version unknown (%s)", exc)
        self._gpus = [_Gpu(i, f"gpu.{i}") for i in range(count)]
        for gpu in self._gpus:
            self._open_gpu(gpu)
        self._open_events()
        self._reinit_due = False
        self._last_recheck = self._clock()
        self._next_recheck = self._last_recheck + self.recheck_s
        return ""

    def _open_gpu(self, gpu: _Gpu) -> None:
        nv = self._nv
        try:
            gpu.handle = nv.nvmlDeviceGetHandleByIndex(gpu.index)
        except nv.NVMLError as exc:
            self._lose(gpu, exc)
            return
        gpu.lost = gpu.suspect = False
        self._labels.pop(f"{gpu.prefix}.lost", None)
        self._identify(gpu)
        gpu.mig_layout = self._mig_layout(gpu)
        self._bind(gpu)

    def _query(self, gpu: _Gpu, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` while opening a GPU; None (logged once) if NVML cannot answer."""
        try:
            return fn(*args)
        except Exception as exc:
            code = error_code(exc)
            if code is None:
                raise
            if classify(code) in (GONE, FLAKY):
                gpu.suspect = True
            self._log_once(("open", what, code), "%s: %s unknown (%s)", gpu.prefix, what, exc)
            return None

    def _identify(self, gpu: _Gpu) -> None:
        nv, h, p = self._nv, gpu.handle, gpu.prefix
        gpu.uuid = text(self._query(gpu, "uuid", nv.nvmlDeviceGetUUID, h) or "")
        name = self._query(gpu, "name", nv.nvmlDeviceGetName, h)
        pci = self._query(gpu, "pci info", nv.nvmlDeviceGetPciInfo, h)
        gpu.arch = self._query(gpu, "architecture", nv.nvmlDeviceGetArchitecture, h)
        gpu.pci_device_id = int(pci.pciDeviceId) if pci is not None else None
        found = {
            "uuid": gpu.uuid,
            "name": text(name) if name is not None else "",
            "pci_bus_id": text(pci.busId) if pci is not None else "",
            "arch": ARCH_NAMES.get(gpu.arch, "") if gpu.arch is not None else "",
        }
        for key, value in found.items():
            if value:
                self._labels[f"{p}.{key}"] = value

    def _mig_layout(self, gpu: _Gpu) -> tuple[tuple[int, int, str, str], ...] | None:
        """(GPU instance, compute instance, UUID, name) of each MIG device; None: MIG off.

        Also sets ``gpu.mig_handles``, in the same order.
        """
        nv, h = self._nv, gpu.handle
        gpu.mig_handles = []
        try:
            mode = nv.nvmlDeviceGetMigMode(h)[0]
        except Exception as exc:
            if error_code(exc) is None:
                raise
            return None  # not a MIG-capable GPU
        if mode != nv.NVML_DEVICE_MIG_ENABLE:
            return None
        slots = self._query(gpu, "MIG device count", nv.nvmlDeviceGetMaxMigDeviceCount, h) or 0
        found = []
        for j in range(int(slots)):
            try:
                mh = nv.nvmlDeviceGetMigDeviceHandleByIndex(h, j)
            except nv.NVMLError:
                continue  # NotFound: no MIG device in this slot
            gi = self._query(gpu, "GPU instance id", nv.nvmlDeviceGetGpuInstanceId, mh)
            ci = self._query(gpu, "compute instance id", nv.nvmlDeviceGetComputeInstanceId, mh)
            if gi is None or ci is None:
                continue
            uuid = text(self._query(gpu, "MIG uuid", nv.nvmlDeviceGetUUID, mh) or "")
            name = text(self._query(gpu, "MIG name", nv.nvmlDeviceGetName, mh) or "")
            found.append(((int(gi), int(ci), uuid, name), mh))
        found.sort(key=lambda item: item[0][:2])
        gpu.mig_handles = [mh for _, mh in found]
        return tuple(facts for facts, _ in found)

    def _bind(self, gpu: _Gpu) -> None:
        """The GPU's readings (and its GPU instances'), labels for the MIG layout."""
        p, mig = gpu.prefix, gpu.mig_layout is not None
        batch = list(FIELD_VALUES)
        links = self._nvlink_count(gpu)
        if links:
            batch += NVLINK_FIELD_VALUES
            if "nvlink_links" in self.opt_in:
                batch += nvlink_link_fields(links)
        gpu.readings = [FieldBatch(p, batch)]
        gpu.readings += [
            Call(p, f)
            for f in CALL_FIELDS
            if (not f.group or f.group in self.opt_in) and not (mig and f.key == "util")
        ]
        if not mig:
            self._add_gpm(gpu, gpu.readings, p, None)
        if "processes" in self.opt_in:
            procs = Processes(p, self._driver)
            procs.handles = list(gpu.mig_handles) if mig else None
            gpu.readings.append(procs)
        gpu.migs = []
        if mig:
            self._bind_migs(gpu)

    def _bind_migs(self, gpu: _Gpu) -> None:
        assert gpu.mig_layout is not None
        self._labels[f"{gpu.prefix}.mig_mode"] = "enabled"
        for (gi, ci, uuid, name), mh in zip(gpu.mig_layout, gpu.mig_handles, strict=True):
            prefix = f"{gpu.prefix}.mig.{gi}"
            if uuid:
                self._labels[f"{prefix}.ci.{ci}.uuid"] = uuid
            if any(m.gpu_instance == gi for m in gpu.migs):
                continue  # another compute instance of the same GPU instance
            if name:
                self._labels[f"{prefix}.name"] = name
            readings: list[Any] = [Call(prefix, CALL_FIELD[k]) for k in MIG_FIELDS]
            self._add_gpm(gpu, readings, prefix, gi)
            gpu.migs.append(_Mig(gi, prefix, mh, readings))

    def _nvlink_count(self, gpu: _Gpu) -> int:
        nv = self._nv
        ids = [NVLINK_LINK_COUNT]
        v = self._query(gpu, "NVLink count", nv.nvmlDeviceGetFieldValues, gpu.handle, ids)
        if v is None:
            return 0
        ret, count, _ = field_values(v)[0]
        return int(count) if ret == 0 and count == count else 0

    def _add_gpm(self, gpu: _Gpu, readings: list[Any], prefix: str, gi: int | None) -> None:
        nv = self._nv
        support = self._query(gpu, "GPM support", nv.nvmlGpmQueryDeviceSupport, gpu.handle)
        if support is None or not support.isSupportedDevice:
            self._log_once(("gpm", "no"), "%s: no GPM (Hopper and newer only)", gpu.prefix)
            return
        try:
            readings.append(Gpm(nv, prefix, gpu.handle, gi, self._clock))
        except Exception as exc:
            if error_code(exc) is None:
                raise
            self._log_once(("gpm", "alloc"), "%s: GPM samples unavailable (%s)", prefix, exc)

    def _open_events(self) -> None:
        nv = self._nv
        try:
            self._events = nv.nvmlEventSetCreate()
        except Exception as exc:
            if error_code(exc) is None:
                raise
            _log.info("gpu: no NVML event set, XID events not recorded (%s)", exc)
            return
        for gpu in self._gpus:
            self._register_xid(gpu)
        if not any(g.xid for g in self._gpus):
            self._free_events()

    def _register_xid(self, gpu: _Gpu) -> None:
        nv = self._nv
        self._by_handle = {handle_key(g.handle): g for g in self._gpus if g.handle is not None}
        if gpu.lost or self._events is None:
            return
        supported = self._query(gpu, "event types", nv.nvmlDeviceGetSupportedEventTypes, gpu.handle)
        if not supported or not supported & _XID:
            self._log_once(("xid", "unsupported"), "%s: XID events not supported", gpu.prefix)
            return
        try:
            nv.nvmlDeviceRegisterEvents(gpu.handle, _XID, self._events)
        except nv.NVMLError as exc:
            self._log_once(("xid", "register"), "%s: XID events unavailable (%s)", gpu.prefix, exc)
            return
        gpu.xid = True
        self._xid_counts.setdefault(gpu.index, 0)

    # --- re-enumeration ----------------------------------------------------------

    def _recheck_soon(self) -> None:
        soon = self._last_recheck + min(_RECHECK_SOON_S, self.recheck_s)
        self._next_recheck = min(self._next_recheck, soon)

    def _maybe_recheck(self) -> None:
        now = self._clock()
        if now < self._next_recheck:
            return
        self._last_recheck = now
        self._next_recheck = now + self.recheck_s
        if self._reinit_due or any(g.lost for g in self._gpus):
            self._reinit()
            return
        nv = self._nv
        try:
            driver = text(nv.nvmlSystemGetDriverVersion())
            count = int(nv.nvmlDeviceGetCount())
        except nv.NVMLError as exc:
            _log.warning("gpu: NVML cannot list devices (%s); re-initialising", exc)
            self._reinit()
            return
        if count != len(self._gpus):
            _log.warning("gpu: %d GPUs now, %d before; re-initialising", count, len(self._gpus))
            self._reinit()
            return
        if driver != self._driver:
            _log.warning("gpu: driver %s now, %s before", driver, self._driver)
            self._driver = self._labels["driver_version"] = driver
        for gpu in self._gpus:
            self._check(gpu)

    def _check(self, gpu: _Gpu) -> None:
        """Is the GPU still there, the same one, with the same MIG layout? Reopen it if not."""
        nv = self._nv
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(gpu.index)
        except nv.NVMLError as exc:
            if classify(error_code(exc) or 0) in (GONE, FLAKY):
                self._lose(gpu, exc)
            elif classify(error_code(exc) or 0) == REINIT:
                self._reinit_due = True
            return
        uuid = self._query(gpu, "uuid", nv.nvmlDeviceGetUUID, handle)
        same = handle_key(handle) == handle_key(gpu.handle) and (
            uuid is None or text(uuid) == gpu.uuid
        )
        if same:
            old_handles = gpu.mig_handles
            layout = self._mig_layout(gpu)
            if layout == gpu.mig_layout:
                gpu.mig_handles = old_handles  # the same MIG devices: keep the handles in use
                gpu.suspect = False
                return
            _log.warning("%s: MIG layout changed; re-opening it", gpu.prefix)
        else:
            _log.warning("%s: a different GPU now (uuid %s); re-opening it", gpu.prefix, uuid)
        self._reopen(gpu)

    def _reopen(self, gpu: _Gpu) -> None:
        self._close_readings(gpu)
        for key in [k for k in self._labels if k.startswith(f"{gpu.prefix}.")]:
            del self._labels[key]
        gpu.xid = False
        self._open_gpu(gpu)
        self._register_xid(gpu)

    def _reinit(self) -> None:
        """Shut NVML down and open everything again; GPUs it cannot open stay lost."""
        _log.info("gpu: re-initialising NVML")
        old = self._gpus
        self._release()
        self._gpus = []
        reason = self._open()
        if reason:
            self._gpus = old
            for gpu in old:
                gpu.readings, gpu.migs, gpu.handle = [], [], None
                self._lose(gpu, reason)
            self._log_once(("reinit", reason), "gpu: re-initialising NVML failed: %s", reason)
            self._last_recheck = self._clock()
            self._next_recheck = self._last_recheck + self.recheck_s

    def _lose(self, gpu: _Gpu, why: object) -> None:
        if gpu.lost:
            return
        self._close_readings(gpu)
        gpu.lost = True
        self._labels[f"{gpu.prefix}.lost"] = "true"
        _log.warning("%s: GPU lost (%s); the other GPUs go on", gpu.prefix, why)

    # --- sampling ------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        """Driver and CUDA versions, GPU count; per GPU its uuid, name, PCI bus id,
        architecture, MIG layout and, while lost, ``gpu.<i>.lost``. They change when
        the GPUs do (re-enumeration), so read them again for each snapshot."""
        return dict(self._labels)

    def collect(self) -> list[Sample]:
        """One sample of every reading each GPU still answers, plus gpu.<i>.lost and XID events."""
        if not self.available or self._closed:
            return []
        self._maybe_recheck()
        out: list[Sample] = []
        for gpu in self._gpus:
            if not gpu.lost and self._initialized:
                gpu.stop = False
                for prefix, handle, readings in gpu.targets():
                    self._read_all(gpu, prefix, handle, readings, out)
                if gpu.suspect:
                    self._recheck_soon()
            out.append(Sample(f"{gpu.prefix}.lost", 1.0 if gpu.lost else 0.0, "gauge", "bool"))
        if self._events is not None:
            self._drain_xid(out)
        return out

    def _read_all(
        self, gpu: _Gpu, prefix: str, handle: Any, readings: list[Any], out: list[Sample]
    ) -> None:
        for r in list(readings):
            if gpu.stop:
                return
            self._ctx = (gpu, prefix)
            try:
                out.extend(r.read(self._nv, handle, self._report))
            except Exception as exc:
                self._failed(gpu, prefix, handle, readings, r, exc, out)
            if isinstance(r, FieldBatch) and r.dropped_now:
                self._bind_fallbacks(gpu, r)

    def _failed(
        self,
        gpu: _Gpu,
        prefix: str,
        handle: Any,
        readings: list[Any],
        r: Any,
        exc: Exception,
        out: list[Sample],
    ) -> None:
        code = error_code(exc)
        if code is None:
            if not isinstance(exc, (TypeError, ValueError)):
                raise exc
            # An answer of a shape we do not expect must not stop the others: drop it, loudly.
            readings.remove(r)
            r.close(self._nv)
            _log.warning("%s: %s failed unexpectedly (%r); dropped", prefix, r.key, exc)
            return
        cls = self._report(r.key, code)
        if cls == FALLBACK and r.fallback():
            try:
                out.extend(r.read(self._nv, handle, self._report))
            except Exception as again:
                self._failed(gpu, prefix, handle, readings, r, again, out)
            return
        if cls in (UNSUPPORTED, FALLBACK):
            readings.remove(r)
            self._close_quietly(r)

    def _report(self, part: str, code: int) -> str:
        """Log an NVML failure of ``part`` of the reading in hand; return its class."""
        assert self._ctx is not None
        gpu, prefix = self._ctx
        cls = classify(code)
        why = self._error_text(code)
        if cls == UNSUPPORTED:
            self._unsupported.setdefault(prefix, set()).add(part)
            scope = "mig" if ".mig." in prefix else "gpu"
            msg = "%s: %s not supported (%s); dropped for this device"
            if ("drop", scope, part) in self._logged:
                _log.debug(msg, prefix, part, why)
            else:
                self._log_once(("drop", scope, part), msg + " (others: debug)", prefix, part, why)
        elif cls == FALLBACK:
            self._log_once(
                ("fallback", part), "%s: %s: %s; the older call, if any", prefix, part, why
            )
        elif cls == INVALID:
            self._recheck_soon()
            self._log_once(
                ("invalid", prefix, part),
                "%s: %s: NVML says invalid argument (%s); not read, the GPU is re-enumerated",
                prefix,
                part,
                why,
                level=logging.ERROR,
            )
        elif cls in (GONE, FLAKY):
            gpu.suspect = True
            gpu.stop = gpu.stop or cls == GONE
            self._log_once(
                ("flaky", prefix, part, code),
                "%s: %s failed (%s); skipped this sample, checking the GPU",
                prefix,
                part,
                why,
                level=logging.WARNING,
            )
        elif cls == REINIT:
            self._reinit_due = gpu.stop = True
            self._next_recheck = self._clock()
            self._log_once(("reinit", code), "gpu: NVML: %s; re-initialising", why)
        else:
            self._log_once(
                ("skip", prefix, part, code),
                "%s: %s failed (%s); skipped this sample",
                prefix,
                part,
                why,
                level=logging.WARNING,
            )
        return cls

    def _bind_fallbacks(self, gpu: _Gpu, batch: FieldBatch) -> None:
        for key in sorted(batch.fallbacks_due()):
            if key == "power_usage":
                average = power_usage_is_average(gpu.arch, gpu.pci_device_id)
                if average is None:
                    _log.info("%s: no power field, and no telling what PowerUsage is", gpu.prefix)
                    continue
                spec = power_usage_field(average)
            else:
                spec = CALL_FIELD[key]
            _log.info("%s: %s from %s instead", gpu.prefix, key, spec.calls[0])
            gpu.readings.append(Call(gpu.prefix, spec))

    def _drain_xid(self, out: list[Sample]) -> None:
        nv = self._nv
        for _ in range(_MAX_EVENTS_PER_COLLECT):
            try:
                data = nv.nvmlEventSetWait(self._events, 0)
            except nv.NVMLError as exc:
                code = error_code(exc)
                if code != _TIMEOUT:
                    self._log_once(("xid", "wait"), "gpu: XID event wait failed (%s)", exc)
                    self._reinit_due = self._reinit_due or classify(code or 0) == REINIT
                break
            gpu = self._by_handle.get(handle_key(data.device))
            if gpu is None or not data.eventType & _XID:
                continue
            xid = int(data.eventData)
            self._xid_counts[gpu.index] = self._xid_counts.get(gpu.index, 0) + 1
            out.append(Sample(f"{gpu.prefix}.xid", float(xid), "gauge", "xid", event=True))
            where = (
                "" if data.gpuInstanceId == UINT_MAX else f" (GPU instance {data.gpuInstanceId})"
            )
            _log.warning("%s: XID %d%s", gpu.prefix, xid, where)
        for gpu in self._gpus:
            if gpu.xid:
                count = float(self._xid_counts.get(gpu.index, 0))
                out.append(Sample(f"{gpu.prefix}.xid_count", count, "counter", "events"))

    def _error_text(self, code: int) -> str:
        try:
            return str(self._nv.NVMLError(code))
        except Exception:  # an NVML too broken to name its own error
            return f"NVML error {code}"

    def _log_once(
        self, key: tuple[Any, ...], msg: str, *args: Any, level: int = logging.INFO
    ) -> None:
        if key not in self._logged:
            self._logged.add(key)
            _log.log(level, msg, *args)

    # --- introspection and closing ---------------------------------------------------

    @property
    def device_count(self) -> int:
        """How many GPUs NVML reports (lost ones included)."""
        return len(self._gpus)

    def fields_seen(self) -> dict[str, list[str]]:
        """Per GPU (and GPU instance) prefix, the readings it still answers."""
        seen: dict[str, list[str]] = {}
        for gpu in self._gpus:
            if gpu.lost:
                seen[gpu.prefix] = ["lost"]
                continue
            for prefix, _, readings in gpu.targets():
                keys: list[str] = []
                for r in readings:
                    keys += [e.suffix for e in r.entries] if isinstance(r, FieldBatch) else [r.key]
                seen[prefix] = keys
        return seen

    def unsupported(self) -> dict[str, list[str]]:
        """Per prefix, the readings (or fields) NVML said it cannot answer there."""
        return {k: sorted(v) for k, v in sorted(self._unsupported.items())}

    def field_latency_us(self) -> dict[str, tuple[float, int, int]]:
        """Per field of the batch: NVML's own mean and max ``latencyUsec``, and how many."""
        totals: dict[str, list[int]] = {}
        for gpu in self._gpus:
            for r in gpu.readings:
                if isinstance(r, FieldBatch):
                    for suffix, (n, total, peak) in r.latency.items():
                        t = totals.setdefault(suffix, [0, 0, 0])
                        t[0], t[1], t[2] = t[0] + total, max(t[1], peak), t[2] + n
        return {k: (t[0] / t[2], t[1], t[2]) for k, t in sorted(totals.items()) if t[2]}

    def close(self) -> None:
        """Free GPM samples and the event set, then shut NVML down; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def _release(self) -> None:
        if not self._initialized:
            return
        for gpu in self._gpus:
            self._close_readings(gpu)
        self._free_events()
        self._shutdown()

    def _close_readings(self, gpu: _Gpu) -> None:
        for _, _, readings in gpu.targets():
            for r in readings:
                self._close_quietly(r)
        gpu.readings, gpu.migs = [], []

    def _close_quietly(self, r: Any) -> None:
        try:
            r.close(self._nv)
        except Exception as exc:
            if error_code(exc) is None:
                raise
            _log.debug("gpu: releasing %s failed (%s)", r.key, exc)

    def _free_events(self) -> None:
        if self._events is None:
            return
        try:
            self._nv.nvmlEventSetFree(self._events)
        except self._nv.NVMLError as exc:
            _log.debug("gpu: freeing the event set failed (%s)", exc)
        self._events = None
        for gpu in self._gpus:
            gpu.xid = False

    def _shutdown(self) -> None:
        if not self._initialized:
            return
        self._initialized = False
        try:
            self._nv.nvmlShutdown()
        except self._nv.NVMLError as exc:
            _log.debug("gpu: nvmlShutdown failed (%s)", exc)


def _summary(collector: GpuCollector, costs: Sequence[float], samples: int) -> list[str]:
    lines = [
        f"{prefix}: {len(keys)} readings: {' '.join(keys)}"
        for prefix, keys in collector.fields_seen().items()
    ]
    for prefix, parts in collector.unsupported().items():
        lines.append(f"{prefix}: not supported: {' '.join(parts)}")
    latency = collector.field_latency_us()
    if latency:
        lines.append(
            "field latencyUsec (NVML's own, mean/max): "
            + ", ".join(f"{k} {mean:.0f}/{peak}" for k, (mean, peak, _) in latency.items())
        )
    steady = costs[1:] or costs
    lines.append(
        f"per sample: first {costs[0]:.2f} ms, then mean {statistics.fmean(steady):.2f} ms, "
        f"max {max(steady):.2f} ms, {samples} samples, over {len(costs)} samples"
    )
    return lines


def main(argv: Sequence[str] | None = None, nvml: Any | None = None) -> int:
    """Open the collector on this host's NVML and report what it sees and what a sample costs.

    ``nvml`` replaces ``pynvml`` (tests). Returns 1, after printing why, without NVML.
    """
    parser = argparse.ArgumentParser(
        prog="python -m snapcloud.collectors.gpu",
        description="Open the GPU collector on this host and report fields and sample cost.",
    )
    parser.add_argument("--samples", type=int, default=10, help="samples to time (default 10)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument(
        "--opt-in", default="", help=f"comma-separated extra groups: {','.join(sorted(OPT_IN))}"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    opt_in = {s.strip() for s in args.opt_in.split(",") if s.strip()}
    collector = GpuCollector.open(nvml, opt_in=opt_in)
    if not collector.available:
        print(collector.reason)
        return 1
    with collector:
        labels = collector.labels()
        models = sorted({v for k, v in labels.items() if k.count(".") == 2 and k.endswith(".name")})
        print(f"GPUs: {labels.get('gpu.count')} x {', '.join(models) or 'unknown model'}")
        print(f"driver {labels.get('driver_version')}, CUDA {labels.get('cuda_version', '?')}")
        costs: list[float] = []
        counts: list[int] = []
        for i in range(max(args.samples, 1)):
            if i:
                time.sleep(args.interval)
            t0 = time.perf_counter()
            counts.append(len(collector.collect()))
            costs.append((time.perf_counter() - t0) * 1e3)
        for line in _summary(collector, costs, counts[-1]):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
