"""Host streams on an object store: append / get / query / stats / verify.

Also which retention tier serves each keyframe group (``TierView``), and the rule
verify, repair and the compactor share for objects no index names (``SeqIndex``).
"""

from __future__ import annotations

from snapcloud.layout import MARKS_PREFIX
from snapcloud.store._orphans import SeqIndex
from snapcloud.store._read import decode_entry, fetch_entry, trim
from snapcloud.store._repo import Repository
from snapcloud.store._stream import HostStream, StreamStats
from snapcloud.store._tiers import TierView
from snapcloud.store._verify import Problem, VerifyReport, verify_stream

__all__ = [
    "MARKS_PREFIX",
    "HostStream",
    "Problem",
    "Repository",
    "SeqIndex",
    "StreamStats",
    "TierView",
    "VerifyReport",
    "decode_entry",
    "fetch_entry",
    "trim",
    "verify_stream",
]


def __getattr__(name: str) -> object:
    """``IncrementalSnapshotStore``, the old name of ``HostStream`` ("store" also means a
    backend, the ``store`` package and ``--store``), importable for one more release."""
    if name == "IncrementalSnapshotStore":
        import warnings

        warnings.warn(
            "IncrementalSnapshotStore is now HostStream; the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return HostStream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
