"""The workload fingerprint of a window: what was running, as a short stable name.

In order of preference:

1. the name given (``--fingerprint``);
2. the dominant GPU compute processes: the GPU collector's ``processes``
   opt-in reports ``gpu.<i>.proc.<pid>.mem_bytes``; the three pids holding
   the most GPU memory in the window, by command name;
3. the top CPU processes: the three with the highest ``cpu_percent`` since the
   previous window (psutil), the recorder itself left out, by command name;
   processes under ``min_cpu_percent`` (5 % of one core) are noise, not a
   workload: ``idle`` when no process reaches it.

Names are base command names, deduplicated, sorted and joined with ``+``
(``python+torchrun``), each reduced to ``[A-Za-z0-9._-]`` and the whole to at
most 256 characters, so a fingerprint is always valid and stable across runs.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from snapcloud.models import FINGERPRINT_MAX_LEN, MetricSeries

__all__ = ["Fingerprinter", "gpu_process_memory", "sanitize_fingerprint"]

_log = logging.getLogger(__name__)

_GPU_PROC = re.compile(r"gpu\.[A-Za-z0-9_.:-]*?\.proc\.(\d+)\.mem_bytes")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
IDLE = "idle"


def _clean(name: str) -> str:
    base = os.path.basename(name.strip())
    return _UNSAFE.sub("_", base).strip("_.-")


def sanitize_fingerprint(names: Iterable[str]) -> str:
    """Join command names into a valid fingerprint: cleaned, unique, sorted, ``+``-joined."""
    parts = sorted({c for c in (_clean(n) for n in names) if c})
    joined = "+".join(parts)
    if len(joined) > FINGERPRINT_MAX_LEN:
        joined = joined[:FINGERPRINT_MAX_LEN].rstrip("+")
    return joined


def gpu_process_memory(metrics: Iterable[MetricSeries]) -> dict[int, float]:
    """Per pid, the GPU memory it held in the window (peak per GPU, summed over GPUs)."""
    out: dict[int, float] = {}
    for m in metrics:
        match = _GPU_PROC.fullmatch(m.name)
        if match is None or not len(m):
            continue
        pid = int(match.group(1))
        peak = float(m.values.max())
        if peak == peak:  # NaN never dominates
            out[pid] = out.get(pid, 0.0) + peak
    return out


class Fingerprinter:
    """Derives a window's fingerprint from GPU processes, else from the top CPU processes.

    ``psutil`` is the module to read (default: the real one), so tests inject a
    fake. Call ``prime`` once at start: ``cpu_percent`` measures since the
    previous call. Never raises: an unreadable process table gives ``unknown``.
    """

    def __init__(
        self,
        psutil: ModuleType | Any | None = None,
        *,
        top: int = 3,
        min_cpu_percent: float = 5.0,
        exclude_pids: Iterable[int] | None = None,
    ) -> None:
        if psutil is None:
            import psutil as _psutil

            psutil = _psutil
        self._ps: Any = psutil
        self.top = top
        self.min_cpu_percent = min_cpu_percent
        self.exclude = set(exclude_pids) if exclude_pids is not None else {os.getpid()}
        self._procs: dict[int, Any] = {}

    def prime(self) -> None:
        """Start every process's CPU-time measurement (the first reading is always 0)."""
        self._cpu_usage()

    def derive(self, metrics: Iterable[MetricSeries] = ()) -> str:
        """The fingerprint of a window: its GPU processes', else the top CPU processes'."""
        gpu = gpu_process_memory(metrics)
        if gpu:
            pids = sorted(gpu, key=lambda p: (-gpu[p], p))[: self.top]
            names = [self._name(pid) or f"pid{pid}" for pid in pids]
            found = sanitize_fingerprint(names)
            if found:
                return found
        try:
            usage = self._cpu_usage()
        except Exception as exc:  # psutil failures vary by platform; a name is not worth a crash
            _log.info("fingerprint: process table unreadable (%s)", exc)
            return "unknown"
        busy = [
            (pct, name) for pct, name in usage if pct > 0 and pct >= self.min_cpu_percent and name
        ]
        busy.sort(key=lambda t: (-t[0], t[1]))
        return sanitize_fingerprint(n for _, n in busy[: self.top]) or IDLE

    def _name(self, pid: int) -> str | None:
        try:
            return str(self._ps.Process(pid).name())
        except Exception:  # gone, or not visible from this container: the pid stands in
            return None

    def _cpu_usage(self) -> list[tuple[float, str]]:
        """``(cpu_percent, name)`` of every process, measured since the previous call."""
        ps = self._ps
        seen: dict[int, Any] = {}
        out: list[tuple[float, str]] = []
        for proc in ps.process_iter():
            pid = int(proc.pid)
            if pid in self.exclude:
                continue
            # Keep our own Process objects: cpu_percent(None) measures since *that object's*
            # previous call, so the same object must be asked every window.
            # psutil's Process equality compares pid and creation time: a reused pid is new.
            cached = self._procs.get(pid)
            mine = cached if cached is not None and cached == proc else proc
            seen[pid] = mine
            try:
                pct = float(mine.cpu_percent(interval=None) or 0.0)
                name = str(mine.name() or "")
            except Exception:  # exited or hidden since listed
                continue
            out.append((pct, name))
        self._procs = seen
        return out
