"""Security: credentials never leak, SSE reaches every put, TLS by default, request
checksums on every put, and the host-writer IAM policy keeps a host in its prefixes.

Recognisable fake credentials are set in the environment (moto accepts any), then
everything a user can see is searched for them: log records at DEBUG (botocore's
loggers included), error messages, reprs, and the CLI's ``--debug`` output when
the endpoint fails (unreachable port, 403 from a server, missing bucket).
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pytest

from snapcloud.backends import S3Store, open_store
from snapcloud.errors import ConfigError, SnapcloudError
from snapcloud.retention import Compactor
from snapcloud.store import Repository
from tests.retention.scenario import CONFIG, HOUR, T0, make_snapshots

KEY_ID = "AKIASNAPCLOUDFAKEKEY7"
SECRET = "SNAPCLOUDFAKESECRETk3y/zzzzzzzzzzzzzzzzzzzz"
TOKEN = "SNAPCLOUDFAKETOKEN" + "Q" * 40
SECRETS = (KEY_ID, SECRET, TOKEN, "SNAPCLOUDFAKE")
REPO = Path(__file__).resolve().parents[2]


def _clean(text: str, where: str) -> None:
    for s in SECRETS:
        assert s not in text, f"{s[:12]}... appears in {where}: {text[:2000]}"


@pytest.fixture
def fake_creds(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": TOKEN,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("botocore", "boto3", "urllib3", "s3transfer", "snapcloud"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def _write_some(objects: Any) -> Repository:
    repo = Repository(objects, CONFIG)
    stream = repo.stream("gpu-1", create=True)
    for s in make_snapshots("gpu-1", 10, window_s=3600, step_s=600):
        stream.append(s)
    repo.refresh_catalog("gpu-1")
    return repo


# --------------------------------------------------------------------------- credentials


def test_no_credential_in_debug_logs_errors_or_reprs(
    s3_bucket: tuple[str, str],
    fake_creds: dict[str, str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    endpoint, bucket = s3_bucket
    store = S3Store(bucket, "fleet", endpoint_url=endpoint)
    repo = _write_some(store)
    assert len(repo.stream("gpu-1").query_all()) == 10
    shown = [repr(store), str(store), repr(repo), repo.description, repr(repo.stream("gpu-1"))]
    errors = []
    for make in (
        lambda: S3Store("no-such-bucket-zz", endpoint_url=endpoint).get("k"),
        lambda: S3Store("no-such-bucket-zz", endpoint_url=endpoint).put("k", b"x"),
        lambda: store.get("missing"),
        lambda: open_store(f"s3://{KEY_ID}:{SECRET}@bucket/p"),
        lambda: open_store(f"s3://bucket/p?token={TOKEN}"),
        lambda: open_store(f"{SECRET}://x"),
        lambda: S3Store("b", endpoint_url=f"http://{KEY_ID}:{SECRET}@127.0.0.1:1"),
    ):
        with pytest.raises(SnapcloudError) as info:
            make()
        errors.append(f"{info.value!s} {info.value!r} {info.value.context!r}")
    records = "\n".join(r.getMessage() for r in debug_logs.records)
    assert "x-amz-security-token" in records.lower() or "Authorization" in records, (
        "botocore debug logging did not run: the check below would prove nothing"
    )
    _clean(records, "debug logs")
    _clean("\n".join(errors), "error messages")
    _clean("\n".join(shown), "reprs")


def _cli(
    argv: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "snapcloud", *argv],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        cwd=REPO,
    )


class _Forbidden(http.server.BaseHTTPRequestHandler):
    """Answers every request 403 AccessDenied, echoing the access key id as S3 does."""

    def _deny(self) -> None:
        auth = self.headers.get("Authorization", "")
        key = auth.split("Credential=")[1].split("/")[0] if "Credential=" in auth else ""
        body = (
            "<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Access Denied"
            f"</Message><AWSAccessKeyId>{key}</AWSAccessKeyId></Error>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _deny

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def forbidden_endpoint() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forbidden)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_cli_debug_output_on_failures_holds_no_credential(
    moto_server: str, forbidden_endpoint: str, tmp_path: Path, fake_creds: dict[str, str]
) -> None:
    csv = tmp_path / "util.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{T0 + i * 10**9},{i}\n" for i in range(5)))
    cases = {
        "unreachable port": [
            "ls",
            "--store",
            "s3://bucket-x/p",
            "--endpoint-url",
            "http://127.0.0.1:9",
        ],
        "403": [
            "import",
            str(csv),
            "--host",
            "h1",
            "--store",
            "s3://bucket-x/p",
            "--endpoint-url",
            forbidden_endpoint,
        ],
        "missing bucket": [
            "ls",
            "--store",
            "s3://no-such-bucket-zz/p",
            "--endpoint-url",
            moto_server,
        ],
        "credentials in url": ["ls", "--store", f"s3://{KEY_ID}:{SECRET}@bucket-x/p"],
    }
    for what, argv in cases.items():
        for debug in ([], ["--debug"]):
            done = _cli([*argv, *debug], fake_creds)
            assert done.returncode != 0, (what, done.stdout, done.stderr)
            if not debug:
                assert done.returncode == 2 and done.stderr.count("\n") == 1, (what, done.stderr)
            _clean(done.stdout + done.stderr, f"{what} {debug}")
    # The 403 run with --debug did talk to the server (the check above saw real traffic).
    done = _cli([*cases["403"], "--debug"], fake_creds)
    assert "AccessDenied" in done.stderr, done.stderr[-3000:]
    # ... and its signed request was logged, with the Authorization header masked whole
    assert "'Authorization': b'***'" in done.stderr, done.stderr[-3000:]


# --------------------------------------------------------------------------- SSE


@pytest.mark.parametrize(
    ("sse", "kms"), [("AES256", None), ("aws:kms", "arn:aws:kms:us-east-1:123456789012:key/t")]
)
def test_sse_reaches_every_put_of_every_writer(
    s3_bucket: tuple[str, str], tmp_path: Path, sse: str, kms: str | None
) -> None:
    """CLI import and compaction (subprocesses, SSE from the environment) and the
    library's append, catalog and compactor: every object in the bucket is encrypted."""
    endpoint, bucket = s3_bucket
    env = {"SNAPCLOUD_SSE": sse, "SNAPCLOUD_ENDPOINT_URL": endpoint}
    if kms:
        env["SNAPCLOUD_SSE_KMS_KEY_ID"] = kms
    csv = tmp_path / "util.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{T0 + i * 10**10},{i}\n" for i in range(400)))
    url = f"s3://{bucket}/fleet"
    done = _cli(["import", str(csv), "--host", "cli-host", "--window", "600", "--store", url], env)
    assert done.returncode == 0, done.stderr
    store = S3Store(bucket, "fleet", endpoint_url=endpoint, sse=sse, sse_kms_key_id=kms)
    _write_some(store)
    Compactor(store, CONFIG).run(T0 + 14 * HOUR)  # two groups compressed, marks written
    done = _cli(["compact", "--store", url], env)
    assert done.returncode == 0, done.stderr
    client = boto3.client("s3", endpoint_url=endpoint)
    keys = [
        o["Key"]
        for p in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in p.get("Contents", [])
    ]
    tiers = {k.split("/")[1] for k in keys}
    assert {"raw", "compressed", "index", "catalog", "marks"} <= tiers, tiers
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == sse, key
        assert head.get("SSEKMSKeyId") == kms, key


# --------------------------------------------------------------------------- TLS, checksums


def test_tls_is_the_default_and_plain_http_off_loopback_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="snapcloud")
    assert S3Store("bucket-x", region="us-east-1")._client.meta.endpoint_url.startswith("https://")
    assert open_store("s3://bucket-x/p")._client.meta.endpoint_url.startswith("https://")  # type: ignore[attr-defined]
    for local in ("http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"):
        S3Store("bucket-x", endpoint_url=local)
    assert not [r for r in caplog.records if "plain http" in r.getMessage()]
    for remote in ("http://10.1.2.3:9000", "http://minio.internal:9000"):
        S3Store("bucket-x", endpoint_url=remote)
    warned = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warned) == 2 and "10.1.2.3" in warned[0], warned
    S3Store("bucket-x", endpoint_url="https://minio.internal:9000")
    assert len([r for r in caplog.records if "plain http" in r.getMessage()]) == 2
    with pytest.raises(ConfigError):
        S3Store("bucket-x", endpoint_url="ftp://minio.internal")


@pytest.mark.parametrize("env_setting", [None, "when_required"])
def test_every_put_carries_a_body_checksum(
    s3_bucket: tuple[str, str], monkeypatch: pytest.MonkeyPatch, env_setting: str | None
) -> None:
    """x-amz-checksum-crc32 of the exact body on every PutObject (S3 refuses a mismatch;
    moto does not check it, so the header is checked here against the bytes sent),
    even when the environment asks botocore to send checksums only when required."""
    if env_setting:
        monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", env_setting)
    endpoint, bucket = s3_bucket
    store = S3Store(bucket, "fleet", endpoint_url=endpoint)
    sent: list[tuple[bytes, dict[str, Any]]] = []

    def record(request: Any, **_: Any) -> None:
        body = request.body if isinstance(request.body, bytes) else request.body.read()
        if hasattr(request.body, "seek"):
            request.body.seek(0)
        sent.append((body, dict(request.headers)))

    store._client.meta.events.register("before-send.s3.PutObject", record)
    repo = _write_some(store)
    Compactor(store, CONFIG).run(T0 + 20 * HOUR)
    assert len(sent) >= 20 and repo.verify("gpu-1")[0].ok
    for body, headers in sent:
        value = headers.get("x-amz-checksum-crc32")
        assert value is not None, sorted(headers)
        value = value.decode() if isinstance(value, bytes) else value
        assert base64.b64decode(value) == zlib.crc32(body).to_bytes(4, "big")


# --------------------------------------------------------------------------- IAM


def _render(name: str) -> dict[str, Any]:
    text = (REPO / "infra/terraform/policies" / f"{name}.json.tpl").read_text()
    text = text.replace("${bucket_arn}", "arn:aws:s3:::fleet-bucket").replace("${prefix}", "p/")
    doc: dict[str, Any] = json.loads(text.replace("$${", "${"))
    return doc


def _allowed(
    doc: dict[str, Any], host: str, action: str, key: str | None, prefix: str = ""
) -> bool:
    """A small IAM evaluator: Allow statements only (no Deny in these policies), wildcards
    as IAM matches them, the principal tag substituted, ListBucket's s3:prefix condition."""
    assert all(s["Effect"] == "Allow" for s in doc["Statement"])
    for st in doc["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if not any(fnmatchcase(action, a) for a in actions):
            continue
        target = "arn:aws:s3:::fleet-bucket" + (f"/{key}" if key is not None else "")
        resources = [r.replace("${aws:PrincipalTag/snapcloud-host}", host) for r in st["Resource"]]
        if not any(fnmatchcase(target, r) for r in resources):
            continue
        cond = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if cond is not None:
            pats = [c.replace("${aws:PrincipalTag/snapcloud-host}", host) for c in cond]
            if not any(fnmatchcase(prefix, c) for c in pats):
                continue
        return True
    return False


def test_host_writer_policy_keeps_a_host_in_its_own_prefixes() -> None:
    doc = _render("host-writer")
    me, other = "gpu-1", "gpu-10"  # "gpu-1*" would match gpu-10: prefixes must end in "/"
    own = [
        ("s3:PutObject", f"p/raw/{me}/2026/01/01/000000000000.k.snap"),
        ("s3:PutObject", f"p/index/{me}/raw/000000000000.json"),
        ("s3:PutObject", f"p/catalog/{me}.json"),
        ("s3:PutObject", f"p/marks/leases/{me}.json"),
        ("s3:GetObject", f"p/index/{me}/compressed/x.json"),
        ("s3:DeleteObject", f"p/marks/leases/{me}.json"),
    ]
    for action, key in own:
        assert _allowed(doc, me, action, key), (action, key)
    for action, key in own:
        assert not _allowed(doc, other, action, key), (other, action, key)
    denied = [
        ("s3:PutObject", f"p/raw/{other}/2026/01/01/000000000000.k.snap"),
        ("s3:PutObject", f"p/raw/{me}-evil/x"),
        ("s3:PutObject", f"p/catalog/{other}.json"),
        ("s3:PutObject", f"p/index/{me}/compressed/x.json"),
        ("s3:PutObject", f"p/compressed/{me}/x.snapt"),
        ("s3:PutObject", f"p/marks/deletions/{me}/raw-0-3.json"),
        ("s3:PutObject", "p/marks/leases/compactor.json"),
        ("s3:PutObject", f"raw/{me}/x"),  # outside the store prefix
        ("s3:DeleteObject", f"p/raw/{me}/2026/01/01/000000000000.k.snap"),
        ("s3:GetObject", f"p/raw/{other}/x"),
        ("s3:PutBucketPolicy", None),
        ("s3:PutObjectAcl", f"p/raw/{me}/x"),
    ]
    for action, key in denied:
        assert not _allowed(doc, me, action, key), (action, key)
    assert _allowed(doc, me, "s3:ListBucket", None, f"p/raw/{me}/")
    assert not _allowed(doc, me, "s3:ListBucket", None, f"p/raw/{other}/")
    assert not _allowed(doc, me, "s3:ListBucket", None, "p/")
