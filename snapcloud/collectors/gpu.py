"""NVIDIA GPU metrics through NVML (``pynvml``, from the nvidia-ml-py package).

``GpuCollector`` initialises NVML once and creates every device handle (and
MIG device handle) once. Each device then carries a tuple of bound fields: one
NVML call (or one call and its older fallbacks) and the sample names it
yields. NVML's answer decides what happens to a field, once::

    NotSupported, NoPermission, InvalidArgument, NotFound
                                  dropped for that device, logged once
    FunctionNotFound, ArgumentVersionMismatch, a missing binding
                                  next (older) call of the field, else dropped
    GpuIsLost, Unknown, ResetRequired
                                  the device is lost: gpu.<i>.lost = 1, a label,
                                  no more calls to it; the other devices go on
    any other NVMLError           this sample skips the field, logged once

so steady-state sampling makes only the calls that work. A host without NVML
(no ``pynvml``, no ``libnvidia-ml.so``, no driver, no device) gives a collector
whose ``available`` is False and whose ``reason`` is one line for the caller to
log. Every field, its NVML call, unit and kind: docs/GPU.md.

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
from typing import Any

from snapcloud.collectors._base import Sample
from snapcloud.collectors._nvml import (
    _FIELDS,
    _G,
    _GPM_METRICS,
    _MAX_EVENTS_PER_COLLECT,
    _Bound,
    _Device,
    _DeviceLost,
    _error_classes,
    _Field,
    _Gpm,
    _handle_key,
    _init_reason,
    _text,
)
from snapcloud.errors import ValidationError
from snapcloud.models import validate_metric_name

__all__ = ["OPT_IN", "GpuCollector", "main"]

_log = logging.getLogger(__name__)

OPT_IN: frozenset[str] = frozenset({"pcie", "processes", "xid", "gpm"})
"""Field groups sampled only when asked: each costs more than the defaults (docs/GPU.md)."""


class GpuCollector:
    """Samples every NVIDIA GPU (and MIG device) on the host through NVML.

    ``nvml`` is the module to call (default: ``import pynvml``), so tests can
    inject a fake; ``opt_in`` names extra field groups from :data:`OPT_IN`.
    Never raises for a missing library, driver or device: ``available`` is then
    False and ``reason`` says why in one line. Raises ``ValidationError`` for an
    unknown ``opt_in`` name.
    """

    name = "gpu"

    def __init__(self, nvml: Any | None = None, *, opt_in: Iterable[str] = frozenset()) -> None:
        self.opt_in = frozenset(opt_in)
        unknown = sorted(self.opt_in - OPT_IN)
        if unknown:
            raise ValidationError(
                f"opt_in: unknown field group(s) {unknown}; known: {sorted(OPT_IN)}", field="opt_in"
            )
        self.available = False
        self.reason = ""
        self._devices: list[_Device] = []
        self._labels: dict[str, str] = {}
        self._logged: set[tuple[str, ...]] = set()
        self._initialized = False
        self._closed = False
        self._event_set: Any = None
        self._xid_by_handle: dict[Hashable, _Device] = {}
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
            self._open()
        except BaseException:
            self._shutdown()  # a failure past nvmlInit must not leave NVML initialised
            raise

    @classmethod
    def open(cls, nvml: Any | None = None, *, opt_in: Iterable[str] = frozenset()) -> GpuCollector:
        """Initialise NVML and every device handle; check ``available`` / ``reason`` after."""
        return cls(nvml, opt_in=opt_in)

    def __enter__(self) -> GpuCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- opening -----------------------------------------------------------

    def _open(self) -> None:
        nv = self._nv
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            self.reason = _init_reason(nv, exc)
            return
        self._initialized = True
        self._e_fallback: tuple[type[BaseException], ...] = (
            *_error_classes(nv, "NVMLError_FunctionNotFound", "NVMLError_ArgumentVersionMismatch"),
            AttributeError,  # an older pynvml without the binding or constant
        )
        self._e_drop = _error_classes(
            nv,
            "NVMLError_NotSupported",
            "NVMLError_NoPermission",
            "NVMLError_InvalidArgument",
            "NVMLError_NotFound",
        )
        self._e_lost = _error_classes(
            nv, "NVMLError_GpuIsLost", "NVMLError_Unknown", "NVMLError_ResetRequired"
        )
        self._e_timeout = _error_classes(nv, "NVMLError_Timeout")
        try:
            count = int(nv.nvmlDeviceGetCount())
            self._labels["driver_version"] = _text(nv.nvmlSystemGetDriverVersion())
        except nv.NVMLError as exc:
            self.reason = f"NVML cannot list devices ({exc}): no GPU collector"
            self._shutdown()
            return
        if count == 0:
            self.reason = "no NVIDIA GPU found (NVML reports 0 devices): no GPU collector"
            self._shutdown()
            return
        try:
            cuda = int(nv.nvmlSystemGetCudaDriverVersion())
            self._labels["cuda_version"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        except (nv.NVMLError, AttributeError) as exc:
            _log.info("gpu: CUDA driver version unknown (%s)", exc)
        self._labels["gpu.count"] = str(count)
        fields = [f for f in _FIELDS if not f.group or f.group in self.opt_in]
        self._devices = [self._open_device(i, fields) for i in range(count)]
        if "xid" in self.opt_in:
            self._open_xid()
        self.available = True

    def _open_device(self, index: int, fields: Sequence[_Field]) -> _Device:
        nv = self._nv
        prefix = validate_metric_name(f"gpu.{index}")
        try:
            dev = _Device(prefix, nv.nvmlDeviceGetHandleByIndex(index))
        except nv.NVMLError as exc:
            dev = _Device(prefix, None)
            self._lose(dev, exc)
        dev.lost_name = validate_metric_name(f"{prefix}.lost")
        if dev.lost:
            return dev
        try:
            self._device_labels(dev)
            dev.bound = self._bind(prefix, fields)
            self._open_migs(dev, [f for f in fields if f.on_mig])
            if "gpm" in self.opt_in:
                self._open_gpm(dev)
        except self._e_lost as exc:
            self._lose(dev, exc)
        return dev

    def _bind(self, prefix: str, fields: Iterable[_Field]) -> tuple[_Bound, ...]:
        return tuple(
            _Bound(f, tuple((validate_metric_name(f"{prefix}.{s}"), k, u) for s, k, u in f.outputs))
            for f in fields
        )

    def _device_labels(self, dev: _Device) -> None:
        nv = self._nv
        readers: tuple[tuple[str, Callable[[Any], Any]], ...] = (
            ("uuid", nv.nvmlDeviceGetUUID),
            ("name", nv.nvmlDeviceGetName),
            ("pci_bus_id", lambda h: nv.nvmlDeviceGetPciInfo(h).busId),
        )
        for label, read in readers:
            try:
                self._labels[f"{dev.prefix}.{label}"] = _text(read(dev.handle))
            except self._e_lost:
                raise
            except nv.NVMLError as exc:
                _log.info("%s: %s unknown (%s)", dev.prefix, label, exc)

    def _open_migs(self, dev: _Device, fields: Sequence[_Field]) -> None:
        nv = self._nv
        try:
            mode = nv.nvmlDeviceGetMigMode(dev.handle)[0]
        except self._e_lost:
            raise
        except (nv.NVMLError, AttributeError):
            return  # not a MIG-capable GPU
        if mode != nv.NVML_DEVICE_MIG_ENABLE:
            return
        self._labels[f"{dev.prefix}.mig_mode"] = "enabled"
        try:
            slots = int(nv.nvmlDeviceGetMaxMigDeviceCount(dev.handle))
        except self._e_lost:
            raise
        except nv.NVMLError as exc:
            _log.info("%s: MIG enabled but its devices cannot be listed (%s)", dev.prefix, exc)
            return
        for j in range(slots):
            try:
                handle = nv.nvmlDeviceGetMigDeviceHandleByIndex(dev.handle, j)
            except self._e_lost:
                raise
            except nv.NVMLError:
                continue  # no MIG device in this slot
            prefix = validate_metric_name(f"{dev.prefix}.mig.{j}")
            mig = _Device(prefix, handle, self._bind(prefix, fields), parent=dev)
            try:
                self._labels[f"{prefix}.uuid"] = _text(nv.nvmlDeviceGetUUID(handle))
            except nv.NVMLError as exc:
                _log.info("%s: uuid unknown (%s)", prefix, exc)
            dev.migs.append(mig)

    def _open_gpm(self, dev: _Device) -> None:
        nv = self._nv
        if dev.migs:
            self._log_once(("gpm", "mig"), "%s: GPM skipped on a MIG-enabled GPU", dev.prefix)
            return
        try:
            supported = bool(nv.nvmlGpmQueryDeviceSupport(dev.handle).isSupportedDevice)
            if supported:
                dev.gpm = _Gpm(nv, dev.handle)
        except self._e_lost:
            raise
        except (nv.NVMLError, AttributeError) as exc:
            self._log_once(("gpm", "error"), "%s: GPM unavailable (%s)", dev.prefix, exc)
            return
        if dev.gpm is None:
            self._log_once(("gpm", "unsupported"), "%s: GPM not supported (pre-Hopper)", dev.prefix)
            return
        gpm_field = _Field("gpm", tuple((f"gpm.{n}", _G, "%") for n, _ in _GPM_METRICS), (dev.gpm,))
        dev.bound += self._bind(dev.prefix, [gpm_field])

    def _open_xid(self) -> None:
        nv = self._nv
        try:
            xid = nv.nvmlEventTypeXidCriticalError
            self._event_set = nv.nvmlEventSetCreate()
        except (nv.NVMLError, AttributeError) as exc:
            _log.info("gpu: no NVML event set, XID events not counted (%s)", exc)
            return
        for dev in self._devices:
            if dev.lost:
                continue
            try:
                supported = nv.nvmlDeviceGetSupportedEventTypes(dev.handle) & xid
                if supported:
                    nv.nvmlDeviceRegisterEvents(dev.handle, xid, self._event_set)
            except nv.NVMLError as exc:
                self._log_once(
                    ("xid", "register"), "%s: XID events unavailable (%s)", dev.prefix, exc
                )
                continue
            if not supported:
                self._log_once(("xid", "register"), "%s: XID events not supported", dev.prefix)
                continue
            dev.xid = True
            dev.xid_names = (
                validate_metric_name(f"{dev.prefix}.xid_count"),
                validate_metric_name(f"{dev.prefix}.xid_last"),
            )
            self._xid_by_handle[_handle_key(dev.handle)] = dev
        if not self._xid_by_handle:
            self._free_event_set()

    # --- sampling ----------------------------------------------------------

    def labels(self) -> dict[str, str]:
        """Driver and CUDA versions, GPU count, and per GPU its uuid, name and PCI bus id."""
        return dict(self._labels)

    def collect(self) -> list[Sample]:
        """One sample of every field each device still answers, plus gpu.<i>.lost."""
        if not self.available or self._closed:
            return []
        out: list[Sample] = []
        for dev in self._devices:
            if not dev.lost:
                try:
                    self._collect_device(dev, out)
                    for mig in dev.migs:
                        self._collect_device(mig, out)
                except _DeviceLost:
                    pass
            out.append(Sample(dev.lost_name, 1.0 if dev.lost else 0.0, "gauge", "bool"))
        if self._event_set is not None:
            self._collect_xid(out)
        return out

    def _collect_device(self, dev: _Device, out: list[Sample]) -> None:
        for b in dev.bound:
            values = self._read(dev, b)
            if values is None:
                continue
            try:
                if b.field.key == "processes":
                    out.extend(_process_samples(dev.prefix, values))
                    continue
                out.extend(
                    [
                        Sample(name, float(value), kind, unit)
                        for (name, kind, unit), value in zip(b.specs, values, strict=True)
                        if value is not None
                    ]
                )
            except (TypeError, ValueError, AttributeError) as exc:  # an answer of another shape
                self._drop(dev, b, exc, unexpected=True)

    def _read(self, dev: _Device, b: _Bound) -> Any:
        readers = b.field.readers
        while True:
            try:
                return readers[b.reader](self._nv, dev.handle)
            except self._e_fallback as exc:
                if b.reader + 1 < len(readers):
                    b.reader += 1
                    self._log_once(
                        ("fallback", b.field.key),
                        "%s: %s: newer NVML call unavailable (%s); using the older one",
                        dev.prefix,
                        b.field.key,
                        exc,
                    )
                    continue
                self._drop(dev, b, exc)
            except self._e_drop as exc:
                self._drop(dev, b, exc)
            except self._e_lost as exc:
                self._lose(dev.root, exc)
                raise _DeviceLost from exc
            except self._nv.NVMLError as exc:
                self._log_once(
                    ("error", dev.prefix, b.field.key, type(exc).__name__),
                    "%s: %s failed (%s); skipped this sample",
                    dev.prefix,
                    b.field.key,
                    exc,
                    level=logging.WARNING,
                )
            # A binding answering in a shape we do not expect must not stop the
            # other fields or devices: drop this one, loudly.
            except Exception as exc:
                self._drop(dev, b, exc, unexpected=True)
            return None

    def _drop(self, dev: _Device, b: _Bound, exc: BaseException, unexpected: bool = False) -> None:
        dev.bound = tuple(x for x in dev.bound if x is not b)
        if unexpected:
            _log.warning("%s: %s failed unexpectedly (%r); dropped", dev.prefix, b.field.key, exc)
            return
        scope = "mig" if dev.parent is not None else "gpu"
        msg = "%s: %s not supported (%s); dropped for this device"
        if ("drop", scope, b.field.key) in self._logged:
            _log.debug(msg, dev.prefix, b.field.key, exc)
            return
        self._log_once(
            ("drop", scope, b.field.key),
            msg + " (further devices answering the same are logged at debug level)",
            dev.prefix,
            b.field.key,
            exc,
        )

    def _lose(self, dev: _Device, exc: BaseException) -> None:
        if dev.lost:
            return
        dev.lost = True
        self._labels[f"{dev.prefix}.lost"] = "true"
        _log.warning(
            "%s: GPU lost (%s); no more NVML calls to it, the other GPUs go on", dev.prefix, exc
        )

    def _collect_xid(self, out: list[Sample]) -> None:
        nv = self._nv
        xid = nv.nvmlEventTypeXidCriticalError
        for _ in range(_MAX_EVENTS_PER_COLLECT):
            try:
                data = nv.nvmlEventSetWait(self._event_set, 0)
            except self._e_timeout:
                break  # no more pending events
            except nv.NVMLError as exc:
                self._log_once(("xid", "wait"), "gpu: XID event wait failed (%s)", exc)
                break
            dev = self._xid_by_handle.get(_handle_key(data.device))
            if dev is None or not data.eventType & xid:
                continue
            dev.xid_count += 1
            dev.xid_last = int(data.eventData)
            _log.warning("%s: XID %d (critical error event)", dev.prefix, dev.xid_last)
        for dev in self._devices:
            if dev.xid:
                count_name, last_name = dev.xid_names
                out.append(Sample(count_name, float(dev.xid_count), "counter", "events"))
                out.append(Sample(last_name, float(dev.xid_last), "gauge", "xid"))

    def _log_once(
        self, key: tuple[str, ...], msg: str, *args: Any, level: int = logging.INFO
    ) -> None:
        if key not in self._logged:
            self._logged.add(key)
            _log.log(level, msg, *args)

    # --- introspection and closing -----------------------------------------

    @property
    def device_count(self) -> int:
        """How many GPUs NVML reported at open (lost ones included)."""
        return len(self._devices)

    def fields_seen(self) -> dict[str, list[str]]:
        """Per device (and MIG device) prefix, the field groups it still answers."""
        seen: dict[str, list[str]] = {}
        for dev in self._devices:
            for d in (dev, *dev.migs):
                seen[d.prefix] = ["lost"] if dev.lost else [b.field.key for b in d.bound]
        return seen

    def close(self) -> None:
        """Free GPM samples and the event set, then shut NVML down; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self._initialized:
            return
        for dev in self._devices:
            if dev.gpm is not None:
                try:
                    dev.gpm.free(self._nv)
                except self._nv.NVMLError as exc:
                    _log.debug("%s: freeing GPM samples failed (%s)", dev.prefix, exc)
        self._free_event_set()
        self._shutdown()

    def _free_event_set(self) -> None:
        if self._event_set is None:
            return
        try:
            self._nv.nvmlEventSetFree(self._event_set)
        except self._nv.NVMLError as exc:
            _log.debug("gpu: freeing the event set failed (%s)", exc)
        self._event_set = None
        self._xid_by_handle.clear()

    def _shutdown(self) -> None:
        if not self._initialized:
            return
        self._initialized = False
        try:
            self._nv.nvmlShutdown()
        except self._nv.NVMLError as exc:
            _log.debug("gpu: nvmlShutdown failed (%s)", exc)


def _process_samples(prefix: str, procs: Sequence[Any]) -> list[Sample]:
    """proc_count and per-pid GPU memory; a pid listed twice (several contexts) is summed."""
    mem: dict[int, float] = {}
    for p in procs:
        used = p.usedGpuMemory
        if used is not None:
            mem[int(p.pid)] = mem.get(int(p.pid), 0.0) + float(used)
    out = [
        Sample(f"{prefix}.proc_count", float(len({int(p.pid) for p in procs})), "gauge", "count")
    ]
    out.extend(
        Sample(f"{prefix}.proc.{pid}.mem_bytes", used, "gauge", "bytes")
        for pid, used in mem.items()
    )
    return out


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
        models = sorted({v for k, v in labels.items() if k.endswith(".name")})
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
        for prefix, keys in collector.fields_seen().items():
            print(f"{prefix}: {len(keys)} fields: {' '.join(keys)}")
        steady = costs[1:] or costs
        print(
            f"per sample: first {costs[0]:.2f} ms, then mean {statistics.fmean(steady):.2f} ms, "
            f"max {max(steady):.2f} ms, {counts[-1]} samples, over {len(costs)} samples"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
