"""Store URLs: ``file:///path``, ``s3://bucket/prefix``, ``memory://name``, or the default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from snapcloud.backends._base import ObjectStore
from snapcloud.backends._file import FileStore
from snapcloud.backends._memory import MemoryStore
from snapcloud.backends._s3 import S3Store
from snapcloud.errors import ConfigError


def default_store_path() -> Path:
    """The embedded store: ``<user data dir>/snapcloud/store``."""
    return Path(platformdirs.user_data_dir("snapcloud")) / "store"


def open_store(
    url: str | None = None, *, endpoint_url: str | None = None, **s3_options: Any
) -> ObjectStore:
    """Open the store a URL names; ``None`` means ``SNAPCLOUD_STORE`` or the embedded store.

    Raises ``ConfigError`` (one line, no secrets) for anything it cannot use.
    """
    url = url or os.environ.get("SNAPCLOUD_STORE") or None
    if url is None:
        return FileStore(default_store_path())
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.username or parts.password:
        raise ConfigError(
            f"store URL for {scheme}://{parts.hostname or ''} must not carry credentials; "
            "use the AWS credential chain",
            field="store",
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(
                f"file store URL {url!r} needs an absolute path: file:///abs/path", field="store"
            )
        return FileStore(parts.path)
    if scheme == "s3":
        if not parts.netloc:
            raise ConfigError(
                f"S3 store URL {url!r} needs a bucket: s3://bucket/prefix", field="store"
            )
        endpoint = (
            endpoint_url
            or os.environ.get("SNAPCLOUD_ENDPOINT_URL")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        return S3Store(parts.netloc, parts.path.lstrip("/"), endpoint_url=endpoint, **s3_options)
    if scheme == "memory":
        return MemoryStore.named(parts.netloc + parts.path)
    shown = f"{scheme}://..." if scheme else repr(url)
    raise ConfigError(
        f"unknown store URL {shown}: use file:///path, s3://bucket/prefix or memory://",
        field="store",
    )
