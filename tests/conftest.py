"""Shared fixtures: a moto S3 server over HTTP for the whole session, a fresh bucket per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

# Dummy credentials for the moto server; set before boto3 builds any session.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "SNAPCLOUD_STORE", "SNAPCLOUD_ENDPOINT_URL"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto S3 server on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_server: str) -> tuple[str, str]:
    """A new, empty bucket on the moto server: ``(endpoint_url, bucket)``."""
    import boto3

    bucket = f"t-{uuid.uuid4().hex[:20]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    return moto_server, bucket
