"""Host CPU, memory, disk, network and sensor metrics through psutil.

Every field is a small reader returning samples. A reader that fails on this
platform (a missing psutil function, ``None`` where a platform has no disks,
a permission error) is dropped on its first failure with one log line, so
steady-state sampling only makes the calls that work here.

Names (``<i>`` a logical CPU, ``<sensor>`` a psutil sensor group)::

    cpu.util  cpu.<i>.util                       %        gauge
    load.1  load.5  load.15                      (tasks)  gauge
    cpu.freq_mhz                                 MHz      gauge
    cpu.ctx_switches  cpu.interrupts             count    counter
    mem.used  mem.available  mem.total           bytes    gauge
    swap.used  swap.total                        bytes    gauge
    disk.read_bytes  disk.write_bytes            bytes    counter
    disk.read_ops  disk.write_ops                ops      counter
    net.rx_bytes  net.tx_bytes                   bytes    counter
    net.rx_packets  net.tx_packets               packets  counter
    proc.count                                   count    gauge
    temp.<sensor>.<i>                            C        gauge
"""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

from snapcloud.collectors._base import Sample
from snapcloud.models import validate_metric_name

__all__ = ["CpuCollector"]

_log = logging.getLogger(__name__)

_Reader = Callable[[], list[Sample]]
_UNSAFE = re.compile(r"[^A-Za-z0-9_:%-]+")


class _Unavailable(Exception):
    """A reader found nothing to report on this platform."""


def _gauge(name: str, value: float, unit: str) -> Sample:
    return Sample(name, float(value), "gauge", unit)


def _counter(name: str, value: float, unit: str) -> Sample:
    return Sample(name, float(value), "counter", unit)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


class CpuCollector:
    """Samples host CPU, memory, disk, network, process and temperature metrics.

    ``psutil`` is the module to read from (default: the real one), so tests can
    inject failures. The first ``collect`` primes CPU utilisation (psutil's
    ``interval=None`` semantics) and reports it from the second call on.
    """

    name = "cpu"

    def __init__(self, psutil: ModuleType | Any | None = None) -> None:
        if psutil is None:
            import psutil as _psutil

            psutil = _psutil
        self._ps: Any = psutil
        self._primed = False
        self._core_names: list[str] = []
        self._temp_names: dict[tuple[str, int], str] = {}
        self._readers: dict[str, _Reader] = {
            "cpu.util": self._util,
            "load": self._load,
            "cpu.freq_mhz": self._freq,
            "cpu.stats": self._stats,
            "mem": self._mem,
            "swap": self._swap,
            "disk": self._disk,
            "net": self._net,
            "proc.count": self._procs,
            "temp": self._temps,
        }
        self._labels = self._read_labels()

    def labels(self) -> dict[str, str]:
        """CPU model, logical and physical core counts, OS kernel and total memory."""
        return dict(self._labels)

    def collect(self) -> list[Sample]:
        """One sample of every field that works on this platform."""
        out: list[Sample] = []
        for key, read in list(self._readers.items()):
            try:
                out.extend(read())
            # psutil's failures vary by platform (OSError, NotImplementedError,
            # AttributeError for functions a platform lacks, psutil.Error): any of
            # them means the field is not available here.
            except Exception as exc:
                del self._readers[key]
                _log.info(
                    "cpu: %s unavailable on this platform (%s); dropped",
                    key,
                    str(exc) or type(exc).__name__,
                )
        return out

    def close(self) -> None:
        """Nothing to release: psutil holds no handles."""

    @property
    def fields(self) -> list[str]:
        """The field groups still sampled (those that have not failed here)."""
        return list(self._readers)

    def _read_labels(self) -> dict[str, str]:
        ps = self._ps
        labels = {"cpu.model": _cpu_model(), "os.kernel": platform.release() or "unknown"}
        try:
            labels["cpu.logical_cores"] = str(ps.cpu_count(logical=True) or "unknown")
            labels["cpu.physical_cores"] = str(ps.cpu_count(logical=False) or "unknown")
            labels["mem.total_bytes"] = str(int(ps.virtual_memory().total))
        except Exception as exc:  # same platform variance as in collect()
            _log.info("cpu: host facts incomplete (%s)", exc)
        return labels

    def _util(self) -> list[Sample]:
        total = self._ps.cpu_percent(interval=None)
        cores = self._ps.cpu_percent(interval=None, percpu=True)
        if not self._primed:
            self._primed = True
            return []
        if len(cores) != len(self._core_names):  # first real sample, or CPU hotplug
            self._core_names = [validate_metric_name(f"cpu.{i}.util") for i in range(len(cores))]
        out = [_gauge("cpu.util", total, "%")]
        out.extend(
            Sample(n, float(v), "gauge", "%") for n, v in zip(self._core_names, cores, strict=True)
        )
        return out

    def _load(self) -> list[Sample]:
        one, five, fifteen = self._ps.getloadavg()
        return [
            _gauge("load.1", one, ""),
            _gauge("load.5", five, ""),
            _gauge("load.15", fifteen, ""),
        ]

    def _freq(self) -> list[Sample]:
        freq = self._ps.cpu_freq()
        if freq is None or not freq.current:
            raise _Unavailable("psutil reports no CPU frequency")
        return [_gauge("cpu.freq_mhz", freq.current, "MHz")]

    def _stats(self) -> list[Sample]:
        st = self._ps.cpu_stats()
        return [
            _counter("cpu.ctx_switches", st.ctx_switches, "count"),
            _counter("cpu.interrupts", st.interrupts, "count"),
        ]

    def _mem(self) -> list[Sample]:
        vm = self._ps.virtual_memory()
        return [
            _gauge("mem.used", vm.used, "bytes"),
            _gauge("mem.available", vm.available, "bytes"),
            _gauge("mem.total", vm.total, "bytes"),
        ]

    def _swap(self) -> list[Sample]:
        sw = self._ps.swap_memory()
        return [_gauge("swap.used", sw.used, "bytes"), _gauge("swap.total", sw.total, "bytes")]

    def _disk(self) -> list[Sample]:
        io = self._ps.disk_io_counters()
        if io is None:
            raise _Unavailable("psutil reports no disks")
        return [
            _counter("disk.read_bytes", io.read_bytes, "bytes"),
            _counter("disk.write_bytes", io.write_bytes, "bytes"),
            _counter("disk.read_ops", io.read_count, "ops"),
            _counter("disk.write_ops", io.write_count, "ops"),
        ]

    def _net(self) -> list[Sample]:
        io = self._ps.net_io_counters()
        if io is None:
            raise _Unavailable("psutil reports no network interfaces")
        return [
            _counter("net.rx_bytes", io.bytes_recv, "bytes"),
            _counter("net.tx_bytes", io.bytes_sent, "bytes"),
            _counter("net.rx_packets", io.packets_recv, "packets"),
            _counter("net.tx_packets", io.packets_sent, "packets"),
        ]

    def _procs(self) -> list[Sample]:
        return [_gauge("proc.count", len(self._ps.pids()), "count")]

    def _temps(self) -> list[Sample]:
        groups = self._ps.sensors_temperatures()
        if not groups:
            raise _Unavailable("psutil reports no temperature sensors")
        out: list[Sample] = []
        for sensor, entries in groups.items():
            for i, entry in enumerate(entries):
                if entry.current is None:
                    continue
                out.append(_gauge(self._temp_name(sensor, i), entry.current, "C"))
        return out

    def _temp_name(self, sensor: str, i: int) -> str:
        name = self._temp_names.get((sensor, i))
        if name is None:
            safe = _UNSAFE.sub("_", sensor).strip("_") or "sensor"
            name = validate_metric_name(f"temp.{safe}.{i}")
            self._temp_names[(sensor, i)] = name
        return name
