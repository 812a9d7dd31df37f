"""Store URLs: ``file:///abs/path``, ``s3://bucket/prefix``, ``memory://name``, or the default.

With no URL, ``SNAPCLOUD_STORE`` names the store, else the embedded default: a
``FileStore`` in the user data directory. Messages about a bad URL quote its
scheme, host and path only, never userinfo or a query string.
"""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import platformdirs

from snapcloud.backends._base import ObjectStore
from snapcloud.backends._file import FileStore
from snapcloud.backends._memory import MemoryStore
from snapcloud.backends._s3 import S3Store
from snapcloud.errors import ConfigError

_FORMS = "use file:///abs/path, s3://bucket/prefix or memory://name"
_S3_OPTIONS = frozenset(inspect.signature(S3Store).parameters) - {"bucket", "prefix"}


def default_store_path() -> Path:
    """The embedded store's directory: ``<user data dir>/snapcloud/store`` (not created here)."""
    return Path(platformdirs.user_data_dir("snapcloud")) / "store"


def open_store(
    url: str | None = None,
    *,
    endpoint_url: str | None = None,
    create: bool = True,
    **s3_options: Any,
) -> ObjectStore:
    """Open the store ``url`` names (``None``: ``SNAPCLOUD_STORE``, else the embedded store).

    ``endpoint_url`` (else ``SNAPCLOUD_ENDPOINT_URL``, else ``AWS_ENDPOINT_URL``)
    and ``s3_options`` (``S3Store`` keywords: ``connect_timeout``, ``read_timeout``,
    ``deadline_s``, ``max_attempts``, ``sse``...; else ``SNAPCLOUD_CONNECT_TIMEOUT``,
    ``SNAPCLOUD_READ_TIMEOUT``, ``SNAPCLOUD_DEADLINE``, ``SNAPCLOUD_SSE``) apply to
    ``s3://`` URLs; ``endpoint_url`` is ignored for others. ``create=False`` opens
    a file store for reading: nothing is written, and a missing directory is an
    error. Raises ``ConfigError`` (one line, no secrets) for a URL or option it
    cannot use.
    """
    url = url or os.environ.get("SNAPCLOUD_STORE") or None
    if url is None:
        return FileStore(default_store_path(), create=create)
    parts = _split(url)
    scheme = parts.scheme.lower()
    unknown = set(s3_options) - _S3_OPTIONS
    if unknown or (s3_options and scheme != "s3"):
        names = ", ".join(sorted(unknown or s3_options))
        raise ConfigError(f"store options {names} do not apply to {_shown(parts)}", field="store")
    if scheme == "file":
        return _file_store(parts, create)
    if scheme == "s3":
        return _s3_store(parts, endpoint_url, s3_options)
    if scheme == "memory":
        return MemoryStore.named(unquote(parts.netloc + parts.path))
    # a long "scheme" is more likely a pasted secret than a typo: do not echo it
    shown = repr(scheme) if len(scheme) <= 10 else "(not shown)"
    what = f"unknown store URL scheme {shown}" if scheme else "store URL without a scheme"
    raise ConfigError(f"{what}: {_FORMS}", field="store")


def _split(url: str) -> SplitResult:
    """Parse a store URL, refusing userinfo, queries and fragments; raises ``ConfigError``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parses the port, raising ValueError if bad)
    except ValueError:
        raise ConfigError(f"store URL cannot be parsed: {_FORMS}", field="store") from None
    if "@" in parts.netloc:
        raise ConfigError(
            f"store URL {_shown(parts)} must not carry credentials (user:password@); "
            "S3 credentials come from the AWS credential chain",
            field="store",
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"store URL {_shown(parts)} must not have a query", field="store")
    return parts


def _file_store(parts: SplitResult, create: bool) -> FileStore:
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.startswith("/"):
        raise ConfigError(
            f"file store URL {_shown(parts)} needs an absolute path: {_FORMS}", field="store"
        )
    return FileStore(path, create=create)


def _s3_store(parts: SplitResult, endpoint_url: str | None, options: dict[str, Any]) -> S3Store:
    if not parts.netloc:
        raise ConfigError(f"S3 store URL {_shown(parts)} needs a bucket: {_FORMS}", field="store")
    endpoint = (
        endpoint_url
        or os.environ.get("SNAPCLOUD_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )
    # Server-side encryption for every writer (CLI, recorder, compactor) from the
    # environment, unless the caller chose: SNAPCLOUD_SSE=AES256|aws:kms and
    # SNAPCLOUD_SSE_KMS_KEY_ID.
    options = dict(options)
    for name, var in _TIME_ENV.items():
        if name not in options and os.environ.get(var, "").strip():
            options[name] = _seconds(var, os.environ[var])
    if "sse" not in options and os.environ.get("SNAPCLOUD_SSE"):
        options["sse"] = os.environ["SNAPCLOUD_SSE"]
        kms = os.environ.get("SNAPCLOUD_SSE_KMS_KEY_ID")
        if kms and "sse_kms_key_id" not in options:
            options["sse_kms_key_id"] = kms
    return S3Store(parts.netloc, unquote(parts.path), endpoint_url=endpoint, **options)


#: S3 time bounds from the environment, unless the caller chose: seconds per try to
#: connect and between bytes read, and per request across its retries.
_TIME_ENV = {
    "connect_timeout": "SNAPCLOUD_CONNECT_TIMEOUT",
    "read_timeout": "SNAPCLOUD_READ_TIMEOUT",
    "deadline_s": "SNAPCLOUD_DEADLINE",
}


def _seconds(var: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{var}: {text[:40]!r} is not a positive number of seconds", field=var)
    return value


def _shown(parts: SplitResult) -> str:
    """A URL as quoted in messages: scheme, host and path; never userinfo or query."""
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else repr(parts.path[:80])
