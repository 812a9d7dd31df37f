"""Hostile stores, selectors, endpoints and inputs: nothing hangs, breaks or leaks.

Each case was first a failing reproduction (docs/RELIABILITY.md, "Hostile stores and
input"), run as a user runs it: the CLI in a subprocess (``python -m snapcloud``),
S3 on a moto server over HTTP, a real socket server that accepts and never answers,
a read-only bind mount, a tmpfs that fills up.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from snapcloud.backends import FileStore, S3Store
from snapcloud.errors import RetryableBackendError
from snapcloud.index import Catalog
from snapcloud.query import LabelMatcher, Selector
from snapcloud.store import Repository
from tests.retention.scenario import make_snapshots

ROOT = Path(__file__).resolve().parents[2]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapcloud", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or cli_env(),
        cwd=ROOT,
    )


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPCLOUD_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a failing command prints (no traceback)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def fill_store(root: Path, hosts: dict[str, dict[str, str]]) -> str:
    """Hosts with a few windows each and their catalog entries (user labels given)."""
    repo = Repository(FileStore(root))
    for host, labels in hosts.items():
        stream = repo.stream(host, create=True)
        for s in make_snapshots(host, 3, window_s=600, step_s=60):
            stream.append(s)
        repo.refresh_catalog(host)
        if labels:
            repo.catalog().set_user_labels(host, labels)
    return f"file://{root}"


# --------------------------------------------------------------------------- 5: junk catalog


def test_junk_catalog_objects_are_skipped_reported_and_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = fill_store(root, {"g": {"team": "ml"}, "h": {"team": "ml"}})
    g = root / "catalog" / "g.json"
    raw = bytearray(g.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # a flipped bit
    g.write_bytes(bytes(raw))
    (root / "catalog" / "bogus.json").write_bytes(b"{}")

    hosts = cli("hosts", "--store", store)
    assert hosts.returncode == 0, hosts.stderr
    assert "catalog/g.json" in hosts.stderr and "h" in hosts.stdout
    for args in (("--where", "team=ml"), ("--group-by", "team")):
        q = cli("query", "--metric", "util", *args, "--format", "json", "--store", store)
        assert q.returncode == 0, q.stderr
        assert "catalog/g.json" in q.stderr
    verify = cli("verify", "--json", "--store", store)
    assert verify.returncode == 1
    named = {p["key"] for r in json.loads(verify.stdout) for p in r["problems"]}
    assert {"catalog/g.json", "catalog/bogus.json"} <= named

    refresh = cli("hosts", "--refresh", "--store", store)
    assert refresh.returncode == 0, refresh.stderr
    assert Catalog(FileStore(root)).get("g") is not None  # rebuilt from the stream
    repaired = cli("verify", "--repair", "--store", store)
    assert repaired.returncode == 1, repaired.stderr  # it found the junk, and removed it
    assert not (root / "catalog" / "bogus.json").exists()
    assert cli("verify", "--store", store).returncode == 0


def test_import_into_a_host_whose_catalog_entry_is_junk_exits_0(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = fill_store(root, {"g": {}})
    (root / "catalog" / "g.json").write_bytes(b"{}")
    csv = tmp_path / "more.csv"
    csv.write_text("timestamp,util\n2026-02-01T00:00:00Z,1.5\n2026-02-01T00:01:00Z,2.5\n")
    done = cli("import", str(csv), "--host", "g", "--store", store)
    assert done.returncode == 0, done.stderr
    entry = Catalog(FileStore(root)).get("g")
    assert entry is not None and entry.snapshots == 3 + 2  # two one-minute windows more


# --------------------------------------------------------------------------- 6: regex


def test_a_catastrophic_regex_selector_answers(tmp_path: Path) -> None:
    """``(a+)+$`` failing against a host of 32 ``a``s and a suffix: with Python's ``re``
    that is 2**32 backtracking paths, a query that ran until killed."""
    store = fill_store(tmp_path / "store", {"a" * 32 + "-1": {}})
    query = ["query", "--metric", "util", "--format", "json", "--store", store]
    done = cli(*query, "--where", "host=~(a+)+$", timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == []
    hit = cli(*query, "--where", "host=~(a+)+-1", timeout=60)
    assert hit.returncode == 0 and json.loads(hit.stdout)["rows"], hit.stderr


def test_matchers_and_globs_take_linear_time_on_hostile_input() -> None:
    """Hang guards (a backtracking engine would not return): no timing is asserted."""
    assert not LabelMatcher.parse("host=~(a+)+$").matches({"host": "a" * 50_000 + "!"})
    assert not LabelMatcher.parse("h=~(x|x)*y").matches({"h": "x" * 50_000})
    glob = "*a" * 30 + "b"
    assert not Selector(hosts=(glob,)).host_matches("a" * 200)


@pytest.mark.parametrize("pattern", ["(a", "(a)\\1", "(?=a)a"])
def test_regexes_re2_refuses_are_one_line_errors(tmp_path: Path, pattern: str) -> None:
    store = fill_store(tmp_path / "store", {"h": {}})
    done = cli("query", "--metric", "util", "--where", f"host=~{pattern}", "--store", store)
    assert done.returncode == 2
    assert "--where" in one_line(done) and "regular expression" in done.stderr


def test_a_csv_cell_of_spaces_is_refused_in_linear_time(tmp_path: Path) -> None:
    """The unit pattern searched over ``1<200,000 spaces>2 W`` (no number, so the
    importer looks for a unit) backtracked quadratically with ``re``: 5,000 spaces took
    3.7 s, this cell would take hours. Now it is a one-line error at once."""
    csv = tmp_path / "spaces.csv"
    csv.write_text(
        "timestamp,util\n2026-01-01T00:00:00Z,1" + " " * 200_000 + "2 W\n2026-01-01T00:01:00Z,2\n"
    )
    done = cli("import", str(csv), "--host", "h", "--store", f"file://{tmp_path}/s", timeout=90)
    assert done.returncode == 2
    assert "spaces.csv:2" in one_line(done)


# --------------------------------------------------------------------------- 7: silent endpoint


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A TCP server on loopback that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()


QUICK = {"SNAPCLOUD_CONNECT_TIMEOUT": "1", "SNAPCLOUD_READ_TIMEOUT": "1", "SNAPCLOUD_DEADLINE": "3"}


def test_ls_against_a_silent_endpoint_fails_within_its_deadline() -> None:
    with silent_server() as (endpoint, _):
        t0 = time.monotonic()
        done = cli(
            "ls",
            "--store",
            "s3://bucket",
            "--endpoint-url",
            endpoint,
            env=cli_env(**QUICK),
            timeout=90,
        )
        took = time.monotonic() - t0
    print(f"\nls against a silent endpoint (read 1 s, deadline 3 s): exit 2 after {took:.1f} s")
    assert done.returncode == 2
    assert "deadline" in one_line(done) or "Timeout" in done.stderr


def test_the_deadline_cuts_botocore_retries_short() -> None:
    """With 5 attempts allowed, a 1 s read timeout and a 2 s deadline, the request gives
    up before its attempts run out (the server counts the connections it accepted)."""
    with silent_server() as (endpoint, accepted):
        store = S3Store(
            "bucket", endpoint_url=endpoint, connect_timeout=1, read_timeout=1, deadline_s=2
        )
        with pytest.raises(RetryableBackendError, match="deadline"):
            list(store.list("index/"))
        tries = len(accepted)
    assert 1 <= tries < 5, tries


def test_record_against_a_silent_endpoint_honours_flush_timeout(tmp_path: Path) -> None:
    """``record --duration 2`` against an endpoint that never answers: it exits after
    about its duration plus its flush timeout, non-zero, windows kept in the spool."""
    spool = tmp_path / "spool"
    with silent_server() as (endpoint, _):
        t0 = time.monotonic()
        done = cli(
            "record",
            "--host",
            "silent",
            "--duration",
            "2",
            "--interval",
            "0.2",
            "--window",
            "1",
            "--no-gpu",
            "--flush-timeout",
            "1",
            "--spool-dir",
            str(spool),
            "--store",
            "s3://bucket",
            "--endpoint-url",
            endpoint,
            env=cli_env(**QUICK),
            timeout=120,
        )
        took = time.monotonic() - t0
    print(
        f"\nrecord --duration 2 --flush-timeout 1, silent endpoint: exit {done.returncode} "
        f"after {took:.1f} s"
    )
    assert done.returncode == 1, done.stderr
    assert "left in" in done.stderr.splitlines()[-1]
    assert list(spool.glob("*.snap"))


# --------------------------------------------------------------------------- 8: read-only


READ_COMMANDS = [
    ("ls",),
    ("ls", "--host", "h"),
    ("export", "--host", "h"),
    ("verify",),
    ("hosts",),
    ("stats",),
    ("show", "--host", "h", "1"),
    ("query", "--metric", "util", "--format", "json"),
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: " ".join(a))
def test_read_only_commands_never_create_a_store(tmp_path: Path, args: tuple[str, ...]) -> None:
    missing = tmp_path / "mistyped" / "path"
    done = cli(*args, "--store", f"file://{missing}")
    assert done.returncode == 2
    assert "no store at" in one_line(done)
    assert not missing.exists() and not missing.parent.exists()


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A store, then the same directory through a read-only bind mount (root cannot
    write there either: the kernel refuses with EROFS)."""
    src, ro = tmp_path / "store", tmp_path / "ro"
    fill_store(src, {"h": {"team": "ml"}})
    ro.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"bind mount not permitted here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        with pytest.raises(OSError):
            (ro / "probe").write_bytes(b"x")
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=False)


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: " ".join(a))
def test_a_read_only_store_can_be_read(read_only_mount: Path, args: tuple[str, ...]) -> None:
    done = cli(*args, "--store", f"file://{read_only_mount}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_repair_on_a_read_only_store_is_one_line(read_only_mount: Path) -> None:
    (read_only_mount.parent / "store" / "index" / "h" / "raw" / "000000000000.json").unlink()
    done = cli("verify", "--repair", "--store", f"file://{read_only_mount}")
    assert done.returncode == 2
    assert "Read-only file system" in one_line(done)


@pytest.fixture(scope="module")
def iam_moto() -> Iterator[tuple[str, dict[str, str]]]:
    """A moto server of its own that enforces IAM; yields its endpoint and the admin's
    keys (the first 3 requests, creating the admin, are let through unauthenticated)."""
    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin", PolicyName="all", PolicyDocument=_policy(["*"], ["*"])
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        yield endpoint, {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        proc.terminate()
        proc.wait(10)


def _policy(actions: list[str], resources: list[str]) -> str:
    statement = {"Effect": "Allow", "Action": actions, "Resource": resources}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _creds_env(key: dict[str, str]) -> dict[str, str]:
    return cli_env(
        AWS_ACCESS_KEY_ID=key["id"],
        AWS_SECRET_ACCESS_KEY=key["secret"],
        AWS_DEFAULT_REGION="us-east-1",
    )


def test_an_s3_reader_needs_only_get_object_and_list_bucket(
    iam_moto: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    import boto3

    endpoint, admin = iam_moto
    session = boto3.session.Session(
        aws_access_key_id=admin["id"],
        aws_secret_access_key=admin["secret"],
        region_name="us-east-1",
    )
    bucket = f"ro-{uuid.uuid4().hex[:12]}"
    session.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    iam = session.client("iam", endpoint_url=endpoint)
    user = f"reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    # The reader's whole policy: list the bucket, read its objects. moto 5.2 checks a
    # request against its operation's name (s3:ListObjectsV2, s3:HeadObject) where IAM
    # uses s3:ListBucket and s3:GetObject for them, so both spellings are granted; none
    # of them allows a write (the refused import below shows the policy is enforced).
    read_only = [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListObjectsV2"],
         "Resource": [f"arn:aws:s3:::{bucket}"]},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:HeadObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/*"]},
    ]  # fmt: skip
    iam.put_user_policy(
        UserName=user,
        PolicyName="read",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": read_only}),
    )
    created = iam.create_access_key(UserName=user)["AccessKey"]
    reader = {"id": created["AccessKeyId"], "secret": created["SecretAccessKey"]}
    csv = tmp_path / "h.csv"
    csv.write_text(
        "timestamp,util\n" + "".join(f"2026-01-01T00:{m:02d}:00Z,{m}.5\n" for m in range(30))
    )
    store = ["--store", f"s3://{bucket}/fleet", "--endpoint-url", endpoint]
    wrote = cli("import", str(csv), "--host", "h", "--window", "600", *store, env=_creds_env(admin))
    assert wrote.returncode == 0, wrote.stderr
    # the reader really is refused a write: the server enforces the policy
    refused = cli("import", str(csv), "--host", "h2", *store, env=_creds_env(reader))
    assert refused.returncode == 2 and "AccessDenied" in one_line(refused)
    for args in READ_COMMANDS:
        done = cli(*args, *store, env=_creds_env(reader))
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.strip(), args
    exported = cli("export", "--host", "h", *store, env=_creds_env(reader))
    assert exported.stdout.count("\n") == 31  # header + 30 samples


# --------------------------------------------------------------------------- 9: --debug secrets


class _CredentialServer(http.server.BaseHTTPRequestHandler):
    """Container credentials (``/creds``) and instance metadata (IMDSv2) on loopback."""

    creds: ClassVar[dict[str, str]] = {}
    imds_token = ""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:  # IMDSv2 session token
        self._send(self.imds_token.encode(), "text/plain")

    def do_GET(self) -> None:
        doc = {**self.creds, "Expiration": "2099-01-01T00:00:00Z"}
        if self.path == "/creds" or self.path.endswith("/security-credentials/role"):
            self._send(json.dumps({**doc, "Code": "Success", "Type": "AWS-HMAC"}).encode())
        elif self.path.endswith("/security-credentials/"):
            self._send(b"role", "text/plain")
        else:
            self.send_error(404)


class _StsRecorder(http.server.BaseHTTPRequestHandler):
    """A reverse proxy to moto's STS that keeps every response body: the test learns the
    temporary credentials moto hands out, then looks for them in the CLI's output."""

    upstream = ""
    bodies: ClassVar[list[bytes]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        import urllib.request

        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        req = urllib.request.Request(self.upstream + self.path, data, headers, method="POST")
        with urllib.request.urlopen(req) as resp:
            body = resp.read()
            status = resp.status
        self.bodies.append(body)
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


KEY_ID = "AKIAHOSTILETESTKEY01"
SECRET = "hostileSECRETk3y/abcdefghijklmnopqrstuvw"
TOKEN = "hostileTOKEN" + "Z" * 40


def _source_env(
    source: str, tmp_path: Path, endpoint: str, stack: contextlib.ExitStack
) -> tuple[dict[str, str], list[str]]:
    """The environment of one credential source, and the secret values it involves."""
    env = {k: v for k, v in cli_env().items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    secrets = [KEY_ID, SECRET, TOKEN]
    if source == "environment":
        env.update(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN)
    elif source == "shared-file":
        path = tmp_path / "credentials"
        path.write_text(
            f"[default]\naws_access_key_id = {KEY_ID}\n"
            f"aws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\n"
        )
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(path)
    elif source == "assume-role":
        (tmp_path / "credentials").write_text(
            f"[src]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
        )
        (tmp_path / "config").write_text(
            "[profile r]\nrole_arn = arn:aws:iam::123456789012:role/reader\n"
            "source_profile = src\nregion = us-east-1\n"
        )
        _StsRecorder.upstream, _StsRecorder.bodies = endpoint, []
        sts = stack.enter_context(http_server(_StsRecorder))
        env.update(
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
            AWS_CONFIG_FILE=str(tmp_path / "config"),
            AWS_PROFILE="r",
            AWS_ENDPOINT_URL_STS=sts,
        )
    else:
        _CredentialServer.creds = {"AccessKeyId": KEY_ID, "SecretAccessKey": SECRET, "Token": TOKEN}
        _CredentialServer.imds_token = "IMDSv2hostileSESSION" + "Y" * 20
        base = stack.enter_context(http_server(_CredentialServer))
        if source == "container":
            env.update(
                AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{base}/creds",
                AWS_CONTAINER_AUTHORIZATION_TOKEN="containerAUTHtoken" + "X" * 20,
            )
            secrets.append(env["AWS_CONTAINER_AUTHORIZATION_TOKEN"])
        else:
            env.update(AWS_EC2_METADATA_DISABLED="false", AWS_EC2_METADATA_SERVICE_ENDPOINT=base)
            secrets.append(_CredentialServer.imds_token)
    return env, secrets


@pytest.mark.parametrize(
    "source", ["environment", "shared-file", "assume-role", "container", "instance-metadata"]
)
def test_debug_output_holds_no_credential_of_any_source(
    s3_bucket: tuple[str, str], tmp_path: Path, source: str
) -> None:
    endpoint, bucket = s3_bucket
    Repository(S3Store(bucket, "fleet", endpoint_url=endpoint)).stream("h", create=True).append(
        make_snapshots("h", 1, window_s=60)[0]
    )
    with contextlib.ExitStack() as stack:
        env, secrets = _source_env(source, tmp_path, endpoint, stack)
        done = cli(
            "ls", "--debug", "--store", f"s3://{bucket}/fleet", "--endpoint-url", endpoint, env=env
        )
        if source == "assume-role":
            assert _StsRecorder.bodies, "the CLI never asked STS"
            secrets += _temporary_credentials(_StsRecorder.bodies)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "botocore" in done.stderr  # its debug logs did run
    out = done.stdout + done.stderr
    for value in secrets:
        assert value not in out, f"{source}: {value[:8]}... printed: ...{_around(out, value)}..."


def _temporary_credentials(bodies: list[bytes]) -> list[str]:
    import re

    found = []
    for body in bodies:
        for tag in ("AccessKeyId", "SecretAccessKey", "SessionToken"):
            found += re.findall(rf"<{tag}>([^<]+)</{tag}>", body.decode())
    assert len(found) >= 3, bodies
    return found


def _around(text: str, value: str) -> str:
    at = text.find(value)
    return text[max(0, at - 120) : at + 40]


def test_a_token_in_the_endpoint_query_is_not_printed(
    s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    secret = "queryTOKENhostile" + "W" * 20
    done = cli(
        "ls",
        "--debug",
        "--store",
        f"s3://{bucket}/x",
        "--endpoint-url",
        f"{endpoint}/?X-Amz-Security-Token={secret}&sig={secret}",
    )
    assert secret not in done.stdout + done.stderr, _around(done.stderr, secret)


# --------------------------------------------------------------------------- 10: bad values


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("import", "{csv}", "--host", "h", "--window", "inf"), "--window"),
        (("import", "{csv}", "--host", "h", "--window", "1e300"), "--window"),
        (("query", "--metric", "util", "--step", "9223372037"), "--step"),
        (("query", "--metric", "util", "--step", "inf"), "--step"),
        (
            (
                "export",
                "--host",
                "h",
                "--start",
                "2026-01-02T00:00:00Z",
                "--end",
                "2026-01-01T00:00:00Z",
            ),
            "--end",
        ),
    ],
    ids=["window-inf", "window-1e300", "step-2^63ns", "step-inf", "end-before-start"],
)
def test_bad_values_are_one_line_naming_the_option(
    tmp_path: Path, args: tuple[str, ...], option: str
) -> None:
    store = fill_store(tmp_path / "store", {"h": {}})
    csv = tmp_path / "x.csv"
    csv.write_text("timestamp,util\n2026-01-01T00:00:00Z,1\n")
    before = sorted(p.name for p in (tmp_path / "store").rglob("*"))
    done = cli(*(a.replace("{csv}", str(csv)) for a in args), "--store", store)
    assert done.returncode == 2
    assert option in one_line(done)
    assert sorted(p.name for p in (tmp_path / "store").rglob("*")) == before


# --------------------------------------------------------------------------- 11: spool loss


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"tmpfs mount not permitted here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(disk: Path) -> None:
    """Take every free byte of ``disk``."""
    with open(disk / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while f.write(b"\0" * 4096):
            pass


def test_windows_lost_to_a_full_spool_disk_are_counted_and_fail_the_run(tmp_path: Path) -> None:
    """The spool's disk fills after the first window: every later window is lost. The
    run must say how many and exit 2 (it exited 0 saying "N windows, M uploaded")."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        spool = disk / "spool"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "snapcloud",
                "record",
                "--host",
                "full",
                "--interval",
                "0.05",
                "--window",
                "0.25",
                "--duration",
                "3",
                "--json",
                "--no-gpu",
                "--spool-dir",
                str(spool),
                "--flush-timeout",
                "0",
                # no store answers: nothing leaves the spool, so the disk stays full
                "--store",
                "s3://bucket",
                "--endpoint-url",
                "http://127.0.0.1:1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=cli_env(SNAPCLOUD_DEADLINE="1"),
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # one window acknowledged (spooled)
        _fill(disk)
        out, err = proc.communicate(timeout=120)
    acked = [first, *out.splitlines()]
    summary = err.strip().splitlines()[-1]
    print(f"\nfull spool disk: {summary}")
    assert proc.returncode == 2, err
    assert "LOST" in summary and "not spooled" in summary
    assert "No space left on device" in err and str(spool) in err
    assert json.loads(first)["spool_id"]
    assert len(acked) >= 1


def test_a_full_spool_disk_at_start_names_the_path(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "64k") as disk:
        _fill(disk)
        spool = disk / "spool"
        done = cli(
            "record",
            "--host",
            "full",
            "--duration",
            "1",
            "--no-gpu",
            "--spool-dir",
            str(spool),
            "--store",
            f"file://{tmp_path}/store",
        )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("snapcloud: error:"), done.stderr
    assert "No space left on device" in line and str(spool) in line
