"""Object stores: the ``ObjectStore`` protocol and its memory, file and S3 backends."""

from __future__ import annotations

from snapcloud.backends._base import (
    GetResult,
    LifecycleStore,
    ObjectInfo,
    ObjectStore,
    has_lifecycle,
)
from snapcloud.backends._counting import CountingStore
from snapcloud.backends._file import FileStore
from snapcloud.backends._forwarding import ForwardingStore
from snapcloud.backends._keys import check_key
from snapcloud.backends._memory import MemoryStore
from snapcloud.backends._s3 import S3Store, secret_redacting_filter
from snapcloud.backends._url import default_store_path, open_store

__all__ = [
    "CountingStore",
    "FileStore",
    "ForwardingStore",
    "GetResult",
    "LifecycleStore",
    "MemoryStore",
    "ObjectInfo",
    "ObjectStore",
    "S3Store",
    "check_key",
    "default_store_path",
    "has_lifecycle",
    "open_store",
    "secret_redacting_filter",
]
