"""snapcloud: fleet-wide CPU/GPU profiling on object storage.

Snapshots of CPU and GPU metrics are stored as zstd-compressed keyframe and
delta objects with JSON index segments on S3-compatible storage, a local
directory, or memory. The public API is re-exported here; the CLI lives in
``snapcloud.cli`` and is never needed to use the library.
"""

from __future__ import annotations

from snapcloud.backends import (
    FileStore,
    MemoryStore,
    ObjectStore,
    S3Store,
    open_store,
)
from snapcloud.codec import decode, encode_delta, encode_keyframe
from snapcloud.errors import (
    BackendError,
    ChecksumMismatch,
    ConfigError,
    ConflictError,
    CorruptError,
    EmptySelection,
    HostNotFound,
    LeaseHeld,
    MemoryExceeded,
    NotFoundError,
    ObjectNotFound,
    OversizedObject,
    PreconditionFailed,
    QueryIncomplete,
    RetryableBackendError,
    SnapcloudError,
    SnapshotNotFound,
    TruncatedObject,
    UnknownFormat,
    ValidationError,
    WrongBase,
)
from snapcloud.index import IndexEntry, IndexSegment
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig, SnapshotQuery
from snapcloud.store import HostStream, Repository, StreamStats, VerifyReport

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ChecksumMismatch",
    "ConfigError",
    "ConflictError",
    "CorruptError",
    "EmptySelection",
    "FileStore",
    "HostNotFound",
    "HostStream",
    "IndexEntry",
    "IndexSegment",
    "LeaseHeld",
    "MemoryExceeded",
    "MemoryStore",
    "MetricSeries",
    "NotFoundError",
    "ObjectNotFound",
    "ObjectStore",
    "OversizedObject",
    "PreconditionFailed",
    "ProfileSnapshot",
    "QueryIncomplete",
    "Repository",
    "RetryableBackendError",
    "S3Store",
    "SnapcloudError",
    "SnapshotConfig",
    "SnapshotNotFound",
    "SnapshotQuery",
    "StreamStats",
    "TruncatedObject",
    "UnknownFormat",
    "ValidationError",
    "VerifyReport",
    "WrongBase",
    "decode",
    "encode_delta",
    "encode_keyframe",
    "open_store",
]


def __getattr__(name: str) -> object:
    """Old public names, importable for one more release (``snapcloud.store`` warns)."""
    if name == "IncrementalSnapshotStore":
        from snapcloud import store

        return store.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
