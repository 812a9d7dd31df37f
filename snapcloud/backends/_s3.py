"""S3 (and MinIO, Ceph RGW, R2, moto) as an ``ObjectStore``, through boto3.

Conditional puts are S3's own: ``If-None-Match: *`` and ``If-Match: "<etag>"``
on the one PutObject request, so the service decides atomically. Every
botocore error is translated in one place, ``S3Store._translate``; messages
name the operation, bucket, key and error code, never credentials. Every
method raises ``ValidationError`` for a bad key.

Time is bounded: each try has a connect and a read timeout (botocore's), and each
request an overall deadline checked before every retry (botocore retries with
backoff until ``max_attempts`` otherwise), so an endpoint that accepts and never
answers fails a request in about ``deadline_s`` plus one try's timeouts.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime
import email.utils
import ipaddress
import logging
import math
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.session
import urllib3.exceptions
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.utils import parse_timestamp as _botocore_timestamp

from snapcloud.backends._base import GetResult, ObjectInfo
from snapcloud.backends._keys import check_conditions, check_key, check_prefix, check_range
from snapcloud.errors import (
    BackendError,
    ConfigError,
    ObjectNotFound,
    PreconditionFailed,
    RetryableBackendError,
    SnapcloudError,
    ValidationError,
)

log = logging.getLogger(__name__)

_SSE_MODES = (None, "AES256", "aws:kms")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")  # loose: S3-compatibles vary
_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_CONDITION_FAILED = {"PreconditionFailed", "ConditionalRequestConflict", "412"}
_RETRYABLE = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
}
_TRANSIENT_IO = (
    BotoConnectionError,
    HTTPClientError,
    IncompleteReadError,
    builtins.ConnectionError,
    TimeoutError,
    # botocore reads the body of an error reply to GetObject (a streaming operation)
    # after its retries and lets urllib3's error through unwrapped: seen as a
    # ProtocolError when a 404's body was cut by a connection reset.
    urllib3.exceptions.HTTPError,
)


def _parse_timestamp(value: Any) -> datetime.datetime:
    """botocore's timestamp parser for the two forms S3 sends, from the standard library:
    ``Wed, 25 Nov 2026 04:57:25 GMT`` (headers) and ISO 8601 (listings). botocore's own,
    used for anything else, goes through dateutil: measured here, it was most of a
    listing's client CPU (0.35-0.44 s for 3,000 keys against 0.13-0.15 s)."""
    if isinstance(value, str):
        try:
            if value.endswith(" GMT"):
                return email.utils.parsedate_to_datetime(value)
            parsed = datetime.datetime.fromisoformat(value)
            if parsed.tzinfo is not None:
                return parsed
        except (TypeError, ValueError):
            pass
    result: datetime.datetime = _botocore_timestamp(value)
    return result


class S3Store:
    """Objects in ``bucket`` under ``prefix``; raises ``ConfigError`` for unusable settings.

    Also a ``LifecycleStore``: it reads and writes its bucket's lifecycle rules.
    """

    supports_lifecycle = True

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
        connect_timeout: float = 5,
        read_timeout: float = 20,
        deadline_s: float = 60,
        client: Any = None,
    ) -> None:
        _check_settings(bucket, endpoint_url, sse, sse_kms_key_id, max_attempts)
        _check_times(
            connect_timeout=connect_timeout, read_timeout=read_timeout, deadline_s=deadline_s
        )
        self.bucket = bucket
        self.prefix = _normal_prefix(prefix)
        self.endpoint_url = endpoint_url
        self.sse = sse
        self._max_attempts = max_attempts
        self.deadline_s = float(deadline_s)
        self.description = f"s3://{bucket}/{self.prefix}" + (
            f" at {_shown(endpoint_url)}" if endpoint_url else ""
        )
        self._sse_args = {"ServerSideEncryption": sse} if sse else {}
        if sse_kms_key_id:
            self._sse_args["SSEKMSKeyId"] = sse_kms_key_id
        if client is None:
            config = Config(
                # botocore counts Config "max_attempts" as retries after the first try;
                # "total_max_attempts" counts every try, which is what ours means.
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                # Fleet queries fetch with 16 workers; botocore's default pool is 10.
                max_pool_connections=32,
                # Every put carries a CRC32 of its body that S3 checks (end-to-end
                # integrity), whatever AWS_REQUEST_CHECKSUM_CALCULATION says.
                request_checksum_calculation="when_supported",
            )
            # A session per store: boto3's default session is not thread-safe to build from.
            with self._translate("setup", ""):
                core = botocore.session.get_session()
                core.get_component("response_parser_factory").set_parser_defaults(
                    timestamp_parser=_parse_timestamp
                )
                client = boto3.session.Session(botocore_session=core).client(
                    "s3", endpoint_url=endpoint_url, region_name=region, config=config
                )
        self._client = client
        events = client.meta.events
        events.register("before-call.s3", self._start_clock)
        # first, so it runs before botocore's own retry handler decides on a retry
        events.register_first("needs-retry.s3", self._check_deadline)
        _redact_botocore_logs()
        if endpoint_url is not None and _plain_http_off_host(endpoint_url):
            log.warning(
                "S3 endpoint %s is plain http: data and request signatures travel "
                "unencrypted; use https beyond loopback",
                _shown(endpoint_url),
            )

    def __repr__(self) -> str:
        return f"S3Store({self.description!r})"

    def __str__(self) -> str:
        return self.description

    def _start_clock(self, context: dict[str, Any], **_: Any) -> None:
        """botocore's ``before-call``: once per request, before its first try."""
        context["snapcloud_deadline"] = time.monotonic() + self.deadline_s

    def _check_deadline(self, request_dict: dict[str, Any], **_: Any) -> None:
        """botocore's ``needs-retry``, before each retry: none once the deadline passed."""
        until = request_dict.get("context", {}).get("snapcloud_deadline")
        if until is not None and time.monotonic() >= until:
            raise _DeadlinePassed(self.deadline_s)

    @contextlib.contextmanager
    def _translate(self, op: str, key: str | None) -> Iterator[None]:
        """Turn any botocore / boto3 error into snapcloud's tree: the only place that does.
        ``key`` is ``None`` for a request about the bucket itself."""
        if key is None:
            where = f"S3 {op} of bucket {self.bucket!r}"
        else:
            where = f"S3 {op} of {key!r} in bucket {self.bucket!r}"
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            error = _client_error_class(op, code, status)
            if error is ObjectNotFound and key is None:  # a bucket request: no object missing
                error = BackendError
            if error is ObjectNotFound:
                message = f"no object {key!r} in {self.description}"
            else:
                message = f"{where} failed: {code} (HTTP {status})"
            raise error(message, key=key, operation=op, code=code, status=status) from None
        except _DeadlinePassed as exc:
            raise RetryableBackendError(
                f"{where} failed: no answer within the {exc.seconds:g} s deadline "
                "(SNAPCLOUD_DEADLINE)",
                key=key,
                operation=op,
            ) from None
        except (SSLError, urllib3.exceptions.SSLError):  # a certificate problem does not heal
            raise BackendError(f"{where} failed: TLS error", key=key, operation=op) from None
        except _TRANSIENT_IO as exc:
            name = type(exc).__name__
            raise RetryableBackendError(f"{where} failed: {name}", key=key, operation=op) from None
        except BotoCoreError as exc:
            name = type(exc).__name__
            if op == "setup":  # a bad profile or region, before any request
                raise ConfigError(f"cannot set up S3 for {self.description}: {name}") from None
            raise BackendError(f"{where} failed: {name}", key=key, operation=op) from None

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Store ``data``; raises ``PreconditionFailed`` or ``BackendError`` (maybe retryable)."""
        check_conditions(if_absent, if_match)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key), "Body": bytes(data)}
        args.update(self._sse_args)
        if if_absent:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = '"' + if_match.strip('"') + '"'
        with self._translate("put", key):
            resp = self._client.put_object(**args)
        return _etag(resp)

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        """Read an object or a byte range of it; raises ``ObjectNotFound``, ``BackendError``."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        check_range(byte_range)
        if byte_range is not None:
            if byte_range[0] == byte_range[1]:
                return self._empty_range(key)
            args["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        try:
            resp, data = self._get_object(key, args)
        except BackendError as exc:
            if exc.context.get("code") != "InvalidRange":
                raise
            return self._empty_range(key)  # the range starts at or past the end
        return GetResult(data, _etag(resp))

    def _get_object(self, key: str, args: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """GetObject and its body. botocore retries the request, but two bodies are read
        after its retries: the object's, and that of an error reply (a 404, a 500), which
        GetObject streams too. A reply cut in either (reset, short read) is tried again
        here, up to ``max_attempts`` replies, each request with botocore's own retries."""
        until = time.monotonic() + self.deadline_s
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1 and time.monotonic() >= until:
                raise RetryableBackendError(
                    f"S3 get of {key!r} in bucket {self.bucket!r} failed: replies cut, "
                    f"and the {self.deadline_s:g} s deadline passed",
                    key=key,
                    operation="get",
                )
            with self._translate("get", key):
                try:
                    resp = self._client.get_object(**args)
                except urllib3.exceptions.SSLError:
                    raise
                except urllib3.exceptions.HTTPError:  # raw from urllib3: an error reply cut
                    if attempt == self._max_attempts:
                        raise
                    log.debug("S3 get of %r: error reply cut mid-body, asking again", key)
                    continue
                try:
                    return resp, resp["Body"].read()
                except _TRANSIENT_IO:
                    resp["Body"].close()
                    if attempt == self._max_attempts:
                        raise
                    log.debug("S3 get of %r: reply cut mid-body, reading it again", key)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _empty_range(self, key: str) -> GetResult:
        info = self.head(key)
        if info is None:
            raise ObjectNotFound(f"no object {key!r} in {self.description}", key=key)
        return GetResult(b"", info.etag)

    def head(self, key: str) -> ObjectInfo | None:
        """Size and ETag of an object, or ``None``; raises ``BackendError``."""
        full = self._full(key)
        try:
            with self._translate("head", key):
                resp = self._client.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFound:
            return None
        return ObjectInfo(key, int(resp["ContentLength"]), _etag(resp))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order, page by page; raises ``BackendError``."""
        check_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        cut = len(self.prefix)
        with self._translate("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][cut:], int(obj["Size"]), _etag(obj))

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Distinct next segments under ``prefix``, each ending ``/``; raises ``BackendError``."""
        check_prefix(prefix)
        full = self.prefix + prefix
        paginator = self._client.get_paginator("list_objects_v2")
        dirs: builtins.list[str] = []
        with self._translate("list_dirs", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
                dirs.extend(p["Prefix"][len(full) :] for p in page.get("CommonPrefixes", []))
        return sorted(dirs)

    def delete(self, key: str) -> None:
        """Remove an object; a missing key is fine; raises ``BackendError``."""
        full = self._full(key)
        with self._translate("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=full)

    @property
    def lifecycle_prefix(self) -> str:
        """This store's key prefix in the bucket: where its lifecycle rules filter."""
        return self.prefix

    def get_lifecycle(self) -> dict[str, Any]:
        """The bucket's lifecycle configuration, ``{"Rules": []}`` when it has none;
        raises ``BackendError`` (maybe retryable)."""
        try:
            with self._translate("get_lifecycle", None):
                got = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except BackendError as exc:
            if exc.context.get("code") != "NoSuchLifecycleConfiguration":
                raise
            return {"Rules": []}
        return {"Rules": list(got.get("Rules", []))}

    def put_lifecycle(self, config: dict[str, Any]) -> None:
        """Replace the bucket's lifecycle configuration; raises ``BackendError``."""
        with self._translate("put_lifecycle", None):
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration=config
            )

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)


class _DeadlinePassed(Exception):
    """Raised out of botocore's retry loop when a request's deadline has passed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"deadline of {seconds} s passed")
        self.seconds = seconds


def _check_times(**settings: float) -> None:
    """Timeouts and the deadline are positive, finite seconds; raises ``ConfigError``."""
    for name, value in settings.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and value > 0):
            raise ConfigError(f"{name}: {value!r} is not a positive number of seconds", field=name)


def _client_error_class(op: str, code: str, status: int) -> type[SnapcloudError]:
    """Which snapcloud error an S3 error response becomes."""
    if code in _CONDITION_FAILED or status == 412:
        return PreconditionFailed
    if code in _NOT_FOUND:
        # a put only gets NoSuchKey for If-Match on a missing key: the condition failed
        return PreconditionFailed if op == "put" else ObjectNotFound
    if code in _RETRYABLE or status == 429 or status >= 500:
        return RetryableBackendError
    return BackendError


def _etag(resp: dict[str, Any]) -> str:
    return str(resp["ETag"]).strip('"')


def _normal_prefix(prefix: str) -> str:
    """``"a/b"``, ``"/a/b/"`` -> ``"a/b/"``; ``""`` stays; raises ``ConfigError``."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    try:
        check_key(stripped)
    except ValidationError:
        raise ConfigError(f"bad S3 key prefix {prefix[:80]!r}", field="prefix") from None
    return stripped + "/"


def _shown(url: str) -> str:
    """An endpoint URL as shown in messages: scheme, host, port and path only."""
    parts = urlsplit(url)
    return (
        f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "") + parts.path
    )


def _check_settings(
    bucket: str,
    endpoint_url: str | None,
    sse: str | None,
    sse_kms_key_id: str | None,
    max_attempts: int,
) -> None:
    """Refuse settings S3 would refuse later, less clearly; raises ``ConfigError``."""
    if not _BUCKET.fullmatch(bucket):
        raise ConfigError(f"bad S3 bucket name {bucket[:80]!r}", field="bucket")
    if endpoint_url is not None:
        try:
            parts = urlsplit(endpoint_url)
            parts.port  # noqa: B018 (parses the port, raising ValueError if bad)
        except ValueError:
            raise ConfigError("S3 endpoint URL cannot be parsed", field="endpoint_url") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("S3 endpoint URL must be http(s)://host[:port]", field="endpoint_url")
        if parts.username or parts.password:
            raise ConfigError(
                "S3 endpoint URL must not carry credentials; use the AWS credential chain",
                field="endpoint_url",
            )
    if sse not in _SSE_MODES:
        raise ConfigError(f"sse must be None, 'AES256' or 'aws:kms', not {sse!r}", field="sse")
    if sse_kms_key_id and sse != "aws:kms":
        raise ConfigError("sse_kms_key_id needs sse='aws:kms'", field="sse_kms_key_id")
    if max_attempts < 1:
        raise ConfigError("max_attempts must be at least 1", field="max_attempts")


def _plain_http_off_host(endpoint_url: str) -> bool:
    """Whether an endpoint is ``http://`` to anything but this machine (loopback)."""
    parts = urlsplit(endpoint_url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve anywhere


# Botocore's DEBUG logs print request headers, canonical requests and response bodies:
# the Authorization header (access key id, signature), X-Amz-Security-Token, STS and
# container/instance-metadata credential bodies (secret keys, session tokens), the
# IMDS token, signed query strings. ``--debug`` turns those loggers on, so every
# record is rewritten with the values masked. The masking goes by structure, not by
# known values: any value whose name says it is a credential, wherever it appears.
_SECRET_NAME = (
    r"[\w:.-]*?(?:secret|token|password|passwd|credential|signature|authorization"
    r"|accesskey|access_key|session_key|api_key|apikey|sig)[\w:.-]*"
)
_SECRET_PATTERNS = (
    # XML elements: <SecretAccessKey>..</SecretAccessKey>, <SessionToken>, <AccessKeyId>
    (re.compile(rf"(?i)<({_SECRET_NAME})>[^<]*</\1>"), r"<\1>***</\1>"),
    # JSON, Python reprs: "Token": "...", 'Authorization': b'AWS4-HMAC-SHA256 ...'
    (
        re.compile(rf"""(?i)(["']{_SECRET_NAME}["']\s*:\s*b?)(["'])(?:\\.|(?!\2).)*\2"""),
        r"\1\2***\2",
    ),
    # headers, canonical requests, query strings, log text: name=value, name: value
    (
        re.compile(
            rf"(?im)((?:^|(?<=[\s?&;,({{\[]))(?:x-amz-|x-aws-)?{_SECRET_NAME}\s*[=:]\s*)"
            r"[^\s&;,'\"<>})\]]+"
        ),
        r"\1***",
    ),
    # AWS access key ids wherever they stand (AKIA..., ASIA... and the other id kinds)
    (
        re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA|APKA|ABIA|ACCA)[A-Z0-9]{12,}\b"),
        "***",
    ),
)
_LOGGER_ROOTS = ("botocore", "boto3", "s3transfer", "urllib3")


class _RedactSecrets(logging.Filter):
    """Masks credentials in a log record's rendered message (never drops the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_REDACT = _RedactSecrets()


def redact(text: str) -> str:
    """``text`` with every credential-shaped value masked (``***``)."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def secret_redacting_filter() -> logging.Filter:
    """The filter that masks credentials in log records; put it on a handler to cover
    every logger whose records reach that handler (the CLI does, with ``--debug``)."""
    return _REDACT


def _redact_botocore_logs() -> None:
    """Put the redacting filter on every botocore/boto3/urllib3 logger that exists now.

    A logger's filters see only its own records, so each module logger gets one;
    called after a client is built, when botocore's modules are imported.
    """
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        if name.split(".", 1)[0] in _LOGGER_ROOTS and _REDACT not in logger.filters:
            logger.addFilter(_REDACT)
