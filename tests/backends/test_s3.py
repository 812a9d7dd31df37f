"""S3Store: the conformance suite against a real moto server over HTTP, then errors and secrets."""

from __future__ import annotations

import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)

from snapcloud.backends import (
    CountingStore,
    ForwardingStore,
    MemoryStore,
    ObjectStore,
    S3Store,
    has_lifecycle,
)
from snapcloud.errors import (
    BackendError,
    ConfigError,
    ObjectNotFound,
    PreconditionFailed,
    RetryableBackendError,
    SnapcloudError,
)
from snapcloud.testing.store import ObjectStoreConformance

FAKE_KEY_ID = "AKIAFAKESECRETKEY123"
FAKE_SECRET = "wJalrXUtnFAKESECRETxyz"
PREFIX = "some/prefix"


@pytest.fixture(scope="module", autouse=True)
def _atomic_moto_put_object() -> Iterator[None]:
    """Make moto's PutObject decide its condition atomically, as S3 does.

    moto 5.2 checks If-Match / If-None-Match and then writes, with nothing held
    between the two, on a threaded server: two racing conditional puts can both
    pass. Serializing its handler keeps the racing tests about our client (which
    must send the condition on the PutObject itself) rather than moto's window.
    """
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    lock = threading.Lock()

    def put_object(self: Any) -> Any:
        with lock:
            return original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(S3Response, "put_object", put_object)
        yield


class TestS3Store(ObjectStoreConformance):
    """The conformance suite on a fresh bucket of the moto server, under a key prefix."""

    # moto answers ~7 ms a request in-process, so 8 x 20 contended increments take
    # ~11 s; 8 x 3 keeps the contention and costs ~2 s.
    rmw_increments = 3

    @pytest.fixture(autouse=True)
    def _bucket(self, s3_bucket: tuple[str, str]) -> None:
        self.endpoint, self.bucket = s3_bucket
        self.client = boto3.client("s3", endpoint_url=self.endpoint)

    def make_store(self) -> ObjectStore:
        return S3Store(self.bucket, PREFIX, endpoint_url=self.endpoint)

    def raw_put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{PREFIX}/{key}", Body=data)

    def raw_get(self, key: str) -> bytes | None:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=f"{PREFIX}/{key}")
        except self.client.exceptions.NoSuchKey:
            return None
        data: bytes = resp["Body"].read()
        return data

    def test_objects_outside_the_prefix_are_invisible(self, store: ObjectStore) -> None:
        for key in ("outside", f"{PREFIX}ed/x", "some/other"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"x")
        store.put("inside", b"y")
        assert [o.key for o in store.list("")] == ["inside"]
        assert store.list_dirs("") == []
        assert store.head("outside") is None


def test_wrappers_forward_the_lifecycle_capability(s3_bucket: tuple[str, str]) -> None:
    """The conformance suite runs the wrappers over memory; over S3 they forward the
    bucket lifecycle too (uncounted: it is no object request)."""
    endpoint, bucket = s3_bucket
    counting = CountingStore(S3Store(bucket, PREFIX, endpoint_url=endpoint))
    store = ForwardingStore(counting)
    assert has_lifecycle(store) and store.lifecycle_prefix == f"{PREFIX}/"
    rule = {
        "ID": "r",
        "Filter": {"Prefix": f"{PREFIX}/raw/"},
        "Status": "Enabled",
        "Expiration": {"Days": 2},
    }
    store.put_lifecycle({"Rules": [rule]})
    client = boto3.client("s3", endpoint_url=endpoint)
    assert client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == [rule]
    assert store.get_lifecycle() == {"Rules": [rule]}
    assert sum(counting.counts().values()) == 0
    plain = ForwardingStore(MemoryStore())
    assert not has_lifecycle(plain)
    with pytest.raises(ConfigError, match="keeps no bucket lifecycle rules"):
        plain.get_lifecycle()


# ---------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("sse", "kms_key"),
    [("AES256", None), ("aws:kms", "arn:aws:kms:us-east-1:123456789012:key/test")],
)
def test_sse_reaches_every_put(s3_bucket: tuple[str, str], sse: str, kms_key: str | None) -> None:
    endpoint, bucket = s3_bucket
    store = S3Store(bucket, endpoint_url=endpoint, sse=sse, sse_kms_key_id=kms_key)
    store.put("plain", b"1")
    etag = store.put("cond", b"2", if_absent=True)
    store.put("cond", b"3", if_match=etag)
    client = boto3.client("s3", endpoint_url=endpoint)
    for key in ("plain", "cond"):
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == sse
        assert head.get("SSEKMSKeyId") == kms_key
    assert client.get_object(Bucket=bucket, Key="cond")["Body"].read() == b"3"


def test_no_sse_unless_asked(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    S3Store(bucket, endpoint_url=endpoint).put("k", b"1")
    head = boto3.client("s3", endpoint_url=endpoint).head_object(Bucket=bucket, Key="k")
    assert "ServerSideEncryption" not in head


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bucket": ""},
        {"bucket": "a/b"},
        {"bucket": "b", "prefix": "a//b"},
        {"bucket": "b", "sse": "rot13"},
        {"bucket": "b", "sse_kms_key_id": "k"},
        {"bucket": "b", "endpoint_url": "127.0.0.1:9000"},
        {"bucket": "b", "endpoint_url": "ftp://host"},
        {"bucket": "b", "max_attempts": 0},
        {"bucket": "b", "region": "not a region!"},
    ],
)
def test_unusable_settings_are_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        S3Store(**kwargs)


def test_description_shows_bucket_prefix_and_endpoint() -> None:
    store = S3Store("bkt", "/a/b/", endpoint_url="http://127.0.0.1:9000")
    assert store.prefix == "a/b/"
    assert store.description == "s3://bkt/a/b/ at http://127.0.0.1:9000"
    assert repr(store) == "S3Store('s3://bkt/a/b/ at http://127.0.0.1:9000')"
    assert S3Store("bkt").description == "s3://bkt/"


# ---------------------------------------------------------------------- secrets


def _texts_of(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def _failures_of(store: S3Store) -> list[str]:
    """What every failing operation of ``store`` says, traceback included."""
    ops: list[Callable[[], object]] = [
        lambda: store.get("k"),
        lambda: store.put("k", b"v"),
        lambda: store.put("k", b"v", if_match="abc"),
        lambda: list(store.list("")),
        lambda: store.list_dirs(""),
    ]
    texts = [repr(store), str(store), store.description]
    for op in ops:
        with pytest.raises(SnapcloudError) as info:
            op()
        texts += _texts_of(info.value)
    return texts


def test_credentials_never_appear_in_repr_description_or_errors(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    assert boto3.session.Session().get_credentials().secret_key == FAKE_SECRET
    texts: list[str] = []
    for endpoint in (moto_server, "http://127.0.0.1:1"):
        texts += _failures_of(
            S3Store("no-such-bucket-here", "p", endpoint_url=endpoint, max_attempts=1)
        )
    with pytest.raises(ConfigError) as bad:
        S3Store("b", endpoint_url=f"http://{FAKE_KEY_ID}:{FAKE_SECRET}@127.0.0.1:1")
    texts += _texts_of(bad.value)
    blob = "\n".join(texts)
    assert FAKE_KEY_ID not in blob and FAKE_SECRET not in blob
    assert "no-such-bucket-here" in blob and "NoSuchBucket" in blob


# ---------------------------------------------------------------------- failures


def test_an_unreachable_endpoint_is_retryable_and_quick() -> None:
    store = S3Store(
        "bucket",
        endpoint_url="http://127.0.0.1:1",
        max_attempts=1,
        connect_timeout=0.5,
        read_timeout=0.5,
    )
    start = time.monotonic()
    for op in (lambda: store.put("k", b"v"), lambda: store.get("k"), lambda: store.head("k")):
        with pytest.raises(RetryableBackendError, match="EndpointConnectionError"):
            op()
    assert time.monotonic() - start < 5


def test_a_silent_server_times_out_as_retryable() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = S3Store(
            "bucket", endpoint_url=f"http://127.0.0.1:{port}", max_attempts=1, read_timeout=0.3
        )
        start = time.monotonic()
        with pytest.raises(RetryableBackendError, match="ReadTimeoutError"):
            store.get("k")
        assert time.monotonic() - start < 5


class _Canned(BaseHTTPRequestHandler):
    """Answers every request with one S3 error; counts the requests."""

    protocol_version = "HTTP/1.1"  # answers botocore's "Expect: 100-continue" at once
    status = 503
    code = "SlowDown"
    seen = 0

    def _answer(self) -> None:
        type(self).seen += 1
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = f"<Error><Code>{self.code}</Code><Message>m</Message></Error>".encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "code", "error", "attempts"),
    [
        (503, "SlowDown", RetryableBackendError, 2),
        (500, "InternalError", RetryableBackendError, 2),
        (403, "AccessDenied", BackendError, 1),
    ],
)
def test_service_errors_over_http(
    status: int, code: str, error: type[Exception], attempts: int
) -> None:
    handler = type("Handler", (_Canned,), {"status": status, "code": code, "seen": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        store = S3Store("bucket", endpoint_url=endpoint, max_attempts=2)
        with pytest.raises(error) as info:
            store.put("k", b"v")
        assert type(info.value) is error
        assert code in str(info.value) and "'k'" in str(info.value)
        assert handler.seen == attempts  # max_attempts reaches botocore's retry config
    finally:
        server.shutdown()
        server.server_close()


def test_lifecycle_errors_over_http_name_the_bucket() -> None:
    handler = type("Handler", (_Canned,), {"status": 403, "code": "AccessDenied", "seen": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        store = S3Store("bucket", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}")
        for call in (store.get_lifecycle, lambda: store.put_lifecycle({"Rules": []})):
            with pytest.raises(BackendError) as info:
                call()
            assert type(info.value) is BackendError
            assert "AccessDenied" in str(info.value) and "bucket 'bucket'" in str(info.value)
    finally:
        server.shutdown()
        server.server_close()


def test_lifecycle_of_a_missing_bucket_is_a_backend_error(moto_server: str) -> None:
    store = S3Store("no-such-bucket-here", endpoint_url=moto_server)
    with pytest.raises(BackendError) as info:
        store.get_lifecycle()
    assert type(info.value) is BackendError and info.value.context["code"] == "NoSuchBucket"


@pytest.fixture(scope="module")
def offline_store() -> S3Store:
    """A store whose endpoint nothing listens on (building a client takes ~0.1 s)."""
    return S3Store("bkt", "p", endpoint_url="http://127.0.0.1:1")


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("op", "raised", "expected"),
    [
        ("get", _client_error("NoSuchKey", 404), ObjectNotFound),
        ("head", _client_error("404", 404), ObjectNotFound),
        ("put", _client_error("NoSuchKey", 404), PreconditionFailed),
        ("put", _client_error("PreconditionFailed", 412), PreconditionFailed),
        ("put", _client_error("ConditionalRequestConflict", 409), PreconditionFailed),
        ("get", _client_error("NoSuchBucket", 404), BackendError),
        ("put", _client_error("AccessDenied", 403), BackendError),
        ("put", _client_error("BucketAlreadyOwnedByYou", 409), BackendError),
        ("get", _client_error("InvalidRange", 416), BackendError),
        ("put", _client_error("SlowDown", 503), RetryableBackendError),
        ("put", _client_error("Throttling", 400), RetryableBackendError),
        ("put", _client_error("TooManyRequests", 429), RetryableBackendError),
        ("get", _client_error("BadGateway", 502), RetryableBackendError),
        ("put", EndpointConnectionError(endpoint_url="http://x"), RetryableBackendError),
        ("put", ConnectTimeoutError(endpoint_url="http://x"), RetryableBackendError),
        ("get", ReadTimeoutError(endpoint_url="http://x"), RetryableBackendError),
        ("get", ResponseStreamingError(error="reset"), RetryableBackendError),
        ("get", ConnectionResetError(), RetryableBackendError),
        ("put", SSLError(endpoint_url="https://x", error="bad cert"), BackendError),
        ("put", NoCredentialsError(), BackendError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_translate_maps_every_error(
    offline_store: S3Store, op: str, raised: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(SnapcloudError) as info, offline_store._translate(op, "a/key"):
        raise raised
    assert type(info.value) is expected
    assert getattr(info.value, "key", None) == "a/key"
    assert "'a/key'" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "Wed, 25 Nov 2026 04:57:25 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "2026-11-25T04:57:25.000Z",
        "2026-11-25T04:57:25Z",
        "2026-11-25T04:57:25.123456+02:00",
        "2026-11-25T04:57:25",  # no zone: botocore's own reading (UTC)
        1764046645,
        "1764046645.5",
    ],
)
def test_timestamps_are_read_as_botocore_reads_them(text: Any) -> None:
    from botocore.utils import parse_timestamp

    from snapcloud.backends._s3 import _parse_timestamp

    got, want = _parse_timestamp(text), parse_timestamp(text)
    assert got == want and got.utcoffset() == want.utcoffset()


def test_listings_and_heads_carry_the_servers_timestamps(s3_bucket: tuple[str, str]) -> None:
    """The store's client reads LastModified with the standard library; the values are
    botocore's (a plain client's) for both forms S3 sends: a header and a listing."""
    endpoint, bucket = s3_bucket
    store = S3Store(bucket, "ts", endpoint_url=endpoint)
    store.put("a", b"x")
    plain = boto3.client("s3", endpoint_url=endpoint)
    ours = store._client
    head = {"Bucket": bucket, "Key": "ts/a"}
    assert ours.head_object(**head)["LastModified"] == plain.head_object(**head)["LastModified"]
    listed = [o["LastModified"] for o in ours.list_objects_v2(Bucket=bucket)["Contents"]]
    want = [o["LastModified"] for o in plain.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == want and len(listed) == 1


@pytest.mark.parametrize("code", ["NoSuchKey", "404", "NoSuchLifecycleConfiguration"])
def test_a_missing_thing_in_a_bucket_request_is_no_missing_object(
    offline_store: S3Store, code: str
) -> None:
    with pytest.raises(SnapcloudError) as info, offline_store._translate("get_lifecycle", None):
        raise _client_error(code, 404)
    assert type(info.value) is BackendError
    assert "bucket 'bkt'" in str(info.value) and info.value.context["code"] == code
