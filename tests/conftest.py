"""Shared fixtures: a moto S3 server over HTTP for the whole session, a fresh bucket per test."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

# Dummy credentials, set before boto3 builds any session, so no test can reach a
# real account with the developer's own credentials, profile or config file.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
)
for _var in (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "SNAPCLOUD_STORE",
    "SNAPCLOUD_ENDPOINT_URL",
):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto S3 server on loopback, shared by the session; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_server: str) -> tuple[str, str]:
    """A new, empty, uniquely named bucket on the moto server: ``(endpoint_url, bucket)``."""
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:24]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    return moto_server, bucket
