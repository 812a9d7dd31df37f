"""S3 (and MinIO, Ceph RGW, R2, moto) as an ``ObjectStore``, through boto3.

Conditional puts use S3's ``If-None-Match: *`` and ``If-Match: <etag>``. Every
botocore error is translated in one place, ``_translate``; messages name the
operation, bucket and key, never credentials.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from snapcloud.backends._base import GetResult, ObjectInfo
from snapcloud.backends._keys import check_key, check_prefix
from snapcloud.errors import (
    BackendError,
    ConfigError,
    ObjectNotFound,
    PreconditionFailed,
    RetryableBackendError,
)

_RETRYABLE_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
_CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class S3Store:
    """Objects in ``bucket`` under ``prefix``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ConfigError("S3 store needs a bucket name", field="bucket")
        if sse not in (None, "AES256", "aws:kms"):
            raise ConfigError(f"sse must be AES256 or aws:kms, got {sse!r}", field="sse")
        if sse_kms_key_id and sse != "aws:kms":
            raise ConfigError("sse_kms_key_id needs sse='aws:kms'", field="sse_kms_key_id")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if self.prefix:
            check_prefix(self.prefix)
        self.endpoint_url = endpoint_url
        self.description = f"s3://{bucket}/{self.prefix}" + (
            f" at {endpoint_url}" if endpoint_url else ""
        )
        self._sse: dict[str, str] = {}
        if sse:
            self._sse["ServerSideEncryption"] = sse
        if sse_kms_key_id:
            self._sse["SSEKMSKeyId"] = sse_kms_key_id
        if client is None:
            config = Config(
                retries={"max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                request_checksum_calculation="when_supported",
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config
            )
        self._client = client

    def __repr__(self) -> str:
        return f"S3Store({self.description!r})"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextlib.contextmanager
    def _translate(self, op: str, key: str) -> Iterator[None]:
        """Map botocore errors to snapcloud's tree (the only place that does)."""
        where = f"{op} s3://{self.bucket}/{self.prefix}{key}"
        try:
            yield
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _NOT_FOUND_CODES or (status == "404" and op in ("get", "head")):
                raise ObjectNotFound(f"no object {key} ({where})", key=key) from None
            if code in _CONFLICT_CODES or status in ("412", "409"):
                raise PreconditionFailed(f"condition failed: {where} ({code})", key=key) from None
            if code in _RETRYABLE_CODES or status.startswith("5"):
                raise RetryableBackendError(f"{where} failed: {code}", key=key) from None
            raise BackendError(f"{where} failed: {code or status}", key=key) from None
        except (
            EndpointConnectionError,
            ConnectTimeoutError,
            ReadTimeoutError,
            BotoConnectionError,
        ) as exc:
            raise RetryableBackendError(f"{where} failed: {type(exc).__name__}", key=key) from None
        except BotoCoreError as exc:
            raise BackendError(f"{where} failed: {type(exc).__name__}", key=key) from None

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Store ``data``; raises ``PreconditionFailed`` or a ``BackendError``."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": bytes(data)}
        args.update(self._sse)
        if if_absent:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = f'"{if_match}"'
        try:
            with self._translate("put", key):
                resp = self._client.put_object(**args)
        except ObjectNotFound:  # If-Match on a missing key
            raise PreconditionFailed(f"{key} does not exist (If-Match)", key=key) from None
        return str(resp["ETag"]).strip('"')

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Read an object or a byte range of it; raises ``ObjectNotFound``."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if byte_range is not None:
            start, end = byte_range
            if end <= start:
                head = self.head(key)
                if head is None:
                    raise ObjectNotFound(f"no object {key}", key=key)
                return GetResult(b"", head.etag)
            args["Range"] = f"bytes={start}-{end - 1}"
        with self._translate("get", key):
            try:
                resp = self._client.get_object(**args)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    head = self.head(key)
                    if head is None:
                        raise
                    return GetResult(b"", head.etag)
                raise
            body = resp["Body"].read()
        return GetResult(body, str(resp["ETag"]).strip('"'))

    def head(self, key: str) -> ObjectInfo | None:
        """Size and ETag, or ``None``."""
        try:
            with self._translate("head", key):
                resp = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ObjectNotFound:
            return None
        return ObjectInfo(key, int(resp["ContentLength"]), str(resp["ETag"]).strip('"'))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order (paginated)."""
        check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        with self._translate("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        obj["Key"][len(self.prefix) :],
                        int(obj["Size"]),
                        str(obj["ETag"]).strip('"'),
                    )

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Distinct next segments under ``prefix``, each ending with ``/``."""
        check_prefix(prefix)
        out: builtins.list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        full = self.prefix + prefix
        with self._translate("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
                out.extend(p["Prefix"][len(full) :] for p in page.get("CommonPrefixes", []))
        return sorted(out)

    def delete(self, key: str) -> None:
        """Remove an object; a missing key is not an error."""
        with self._translate("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def close(self) -> None:
        """Close the client's connection pool."""
        with contextlib.suppress(Exception):
            self._client.close()
