"""Metric collectors: host CPU/memory/disk/network (psutil) and NVIDIA GPUs (NVML).

Each collector returns flat lists of :class:`Sample` and host-stream labels;
none knows anything of snapshots or storage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snapcloud.collectors._base import Collector, Sample, SampleKind
from snapcloud.collectors.cpu import CpuCollector

if TYPE_CHECKING:
    from snapcloud.collectors.gpu import OPT_IN, GpuCollector

__all__ = ["OPT_IN", "Collector", "CpuCollector", "GpuCollector", "Sample", "SampleKind"]


def __getattr__(name: str) -> Any:
    # The GPU module loads on first use, so ``python -m snapcloud.collectors.gpu``
    # does not find it imported already (runpy warns about that).
    if name in ("GpuCollector", "OPT_IN"):
        from snapcloud.collectors import gpu

        return getattr(gpu, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
