"""Host streams on an object store: append / get / query / stats / verify."""

from __future__ import annotations

from snapcloud.store._read import decode_entry, fetch_entry, trim
from snapcloud.store._repo import Repository
from snapcloud.store._stream import IncrementalSnapshotStore, StreamStats
from snapcloud.store._tiers import MARKS_PREFIX
from snapcloud.store._verify import Problem, VerifyReport, verify_stream

__all__ = [
    "MARKS_PREFIX",
    "IncrementalSnapshotStore",
    "Problem",
    "Repository",
    "StreamStats",
    "VerifyReport",
    "decode_entry",
    "fetch_entry",
    "trim",
    "verify_stream",
]
