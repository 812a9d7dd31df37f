from __future__ import annotations

import boto3
import pytest

from snapcloud.backends import ObjectStore, S3Store
from snapcloud.errors import RetryableBackendError, SnapcloudError
from tests.backends.conformance import ObjectStoreConformance

FAKE_KEY_ID = "AKIAFAKESECRETKEY123"
FAKE_SECRET = "wJalrXUtnFAKESECRETxyzQQ"


class TestS3Store(ObjectStoreConformance):
    """The conformance suite against a real moto server over HTTP."""

    @pytest.fixture
    def store(self, s3_bucket: tuple[str, str]) -> ObjectStore:
        endpoint, bucket = s3_bucket
        return S3Store(bucket, "some/prefix", endpoint_url=endpoint)

    def _client(self, store: S3Store) -> object:
        return boto3.client("s3", endpoint_url=store.endpoint_url)

    def raw_put(self, store: ObjectStore, key: str, data: bytes) -> None:
        assert isinstance(store, S3Store)
        boto3.client("s3", endpoint_url=store.endpoint_url).put_object(
            Bucket=store.bucket, Key=store.prefix + key, Body=data
        )

    def raw_get(self, store: ObjectStore, key: str) -> bytes | None:
        assert isinstance(store, S3Store)
        client = boto3.client("s3", endpoint_url=store.endpoint_url)
        try:
            body: bytes = client.get_object(Bucket=store.bucket, Key=store.prefix + key)[
                "Body"
            ].read()
        except client.exceptions.NoSuchKey:
            return None
        return body


@pytest.mark.parametrize("sse", ["AES256", "aws:kms"])
def test_sse_reaches_every_put(s3_bucket: tuple[str, str], sse: str) -> None:
    endpoint, bucket = s3_bucket
    store = S3Store(bucket, endpoint_url=endpoint, sse=sse)
    store.put("a", b"1")
    etag = store.put("b", b"2", if_absent=True)
    store.put("b", b"3", if_match=etag)
    client = boto3.client("s3", endpoint_url=endpoint)
    for key in ("a", "b"):
        assert client.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == sse


def test_unreachable_endpoint_is_retryable_and_quick() -> None:
    store = S3Store(
        "bucket", endpoint_url="http://127.0.0.1:1", max_attempts=1, connect_timeout=0.5
    )
    with pytest.raises(RetryableBackendError):
        store.put("k", b"v")


def test_credentials_never_appear_in_repr_or_errors(
    s3_bucket: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, _ = s3_bucket
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    store = S3Store("no-such-bucket-here", "p", endpoint_url=endpoint)
    texts = [repr(store), store.description]
    for op in (lambda: store.get("k"), lambda: store.put("k", b"v"), lambda: list(store.list(""))):
        with pytest.raises(SnapcloudError) as info:
            op()
        texts += [str(info.value), repr(info.value)]
    blob = "\n".join(texts)
    assert FAKE_KEY_ID not in blob and FAKE_SECRET not in blob
    assert "no-such-bucket-here" in blob
