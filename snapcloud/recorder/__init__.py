"""The recorder: samples collectors on a fixed schedule, spools sealed windows, uploads them.

``Recorder`` wires a ``Sampler`` (drift-free schedule, windows), a ``Spool``
(fsynced local files, bounded), an ``Uploader`` (ordered, exactly-once appends
with backoff) and a ``Lease`` (one writer per host stream; ``snapcloud.coordination``,
re-exported here with ``Backoff``, ``LeaseKeeper`` and ``lease_key``). See docs/RECORDER.md.
"""

from __future__ import annotations

from snapcloud.coordination import Backoff, Lease, LeaseInfo, LeaseKeeper, default_owner
from snapcloud.layout import lease_key
from snapcloud.recorder._fingerprint import Fingerprinter, gpu_process_memory, sanitize_fingerprint
from snapcloud.recorder._recorder import (
    Recorder,
    RecorderConfig,
    RecorderStatus,
    RecordSummary,
    SealedWindow,
    default_spool_dir,
)
from snapcloud.recorder._sampler import Clock, Sampler, SamplerStats, SystemClock, Window
from snapcloud.recorder._spool import DEFAULT_SPOOL_MAX_BYTES, Spool
from snapcloud.recorder._uploader import Uploader

__all__ = [
    "DEFAULT_SPOOL_MAX_BYTES",
    "Backoff",
    "Clock",
    "Fingerprinter",
    "Lease",
    "LeaseInfo",
    "LeaseKeeper",
    "RecordSummary",
    "Recorder",
    "RecorderConfig",
    "RecorderStatus",
    "Sampler",
    "SamplerStats",
    "SealedWindow",
    "Spool",
    "SystemClock",
    "Uploader",
    "Window",
    "default_owner",
    "default_spool_dir",
    "gpu_process_memory",
    "lease_key",
    "sanitize_fingerprint",
]
