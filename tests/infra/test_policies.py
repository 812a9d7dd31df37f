"""The IAM and bucket policies of infra/terraform, judged by a strict evaluator
(tests/infra/iam_eval.py) against the requests snapcloud really makes: a recorder, a
compactor and a fleet query run over a store that records each request as the S3 call
it would be, and every one must be allowed by its role's policy plus the bucket policy.
Then what each role must never do is denied."""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snapcloud.backends import ForwardingStore, MemoryStore
from snapcloud.backends._base import GetResult, ObjectInfo
from snapcloud.query import Selector, list_hosts, read_series, run_query
from snapcloud.recorder import Recorder, RecorderConfig
from snapcloud.retention import Compactor
from snapcloud.store import Repository
from tests.infra.iam_eval import Request, Unsupported, allowed, decide
from tests.recorder.fakes import FakeClock, FakeCollector
from tests.retention.scenario import CONFIG, HOUR, T0, make_snapshots

POLICIES = Path(__file__).resolve().parents[2] / "infra" / "terraform" / "policies"
BUCKET = "arn:aws:s3:::fleet-bucket"
PREFIX = "fleet/"
TLS = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}


def render(name: str, **values: str) -> dict[str, Any]:
    """A template as Terraform's templatefile renders it: ``${v}`` substituted, ``$${``
    left as a literal ``${`` (an IAM policy variable); an unknown variable fails."""
    text = (POLICIES / f"{name}.json.tpl").read_text()
    values = {"bucket_arn": BUCKET, "prefix": PREFIX, **values}

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return "${"
        assert m.group(2) in values, f"{name}: unknown template variable {m.group(2)}"
        return values[m.group(2)]

    doc: dict[str, Any] = json.loads(re.sub(r"\$(\$)\{|\$\{([^}]*)\}", sub, text))
    return doc


class S3Calls(ForwardingStore):
    """Records each call as the S3 request it is (action, ARN, condition keys)."""

    def __init__(self, inner: MemoryStore, prefix: str = PREFIX) -> None:
        super().__init__(inner)
        self.prefix = prefix
        self.requests: list[Request] = []

    def _obj(self, action: str, key: str, **context: str) -> None:
        arn = f"{BUCKET}/{self.prefix}{key}"
        self.requests.append(Request(action, arn, context={**TLS, **context}))

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        cond = {"s3:if-none-match": "*"} if if_absent else {}
        if if_match is not None:
            cond["s3:if-match"] = if_match
        self._obj("s3:PutObject", key, **cond)
        return super().put(key, data, if_absent=if_absent, if_match=if_match)

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None) -> GetResult:
        self._obj("s3:GetObject", key)
        return super().get(key, byte_range=byte_range)

    def head(self, key: str) -> ObjectInfo | None:
        self._obj("s3:GetObject", key)  # HeadObject is authorized as GetObject
        return super().head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self.requests.append(
            Request("s3:ListBucket", BUCKET, context={**TLS, "s3:prefix": self.prefix + prefix})
        )
        return super().list(prefix)

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        self.requests.append(
            Request("s3:ListBucket", BUCKET, context={**TLS, "s3:prefix": self.prefix + prefix})
        )
        return super().list_dirs(prefix)

    def delete(self, key: str) -> None:
        self._obj("s3:DeleteObject", key)
        super().delete(key)


def _denied(requests: list[Request], *policies: dict[str, Any]) -> list[str]:
    return [f"{r.action} {r.resource} {r.context}" for r in requests if not allowed(r, *policies)]


def _record(calls: S3Calls, host: str, tmp_path: Path) -> None:
    clock = FakeClock()
    config = RecorderConfig(
        interval_s=0.1,
        window_s=1.0,
        fingerprint="infra",
        spool_dir=tmp_path / f"spool-{host}",
        flush_timeout_s=5.0,
        lease_wait_s=5.0,
    )
    Recorder(Repository(calls), host, [FakeCollector(clock)], config, clock=clock).run(3.4)


@pytest.fixture
def fleet(tmp_path: Path) -> MemoryStore:
    """A store with a compacted host (gpu-1) and a recorded one (node-1)."""
    inner = MemoryStore()
    repo = Repository(inner, CONFIG)
    stream = repo.stream("gpu-1", create=True)
    for s in make_snapshots("gpu-1", 10, window_s=3600, step_s=600):
        stream.append(s)
    repo.refresh_catalog("gpu-1")
    _record(S3Calls(inner), "node-1", tmp_path)
    return inner


def test_every_request_of_a_real_recorder_is_allowed_by_the_shared_policy(
    tmp_path: Path,
) -> None:
    calls = S3Calls(MemoryStore())
    _record(calls, "node-7", tmp_path)
    _record(calls, "node-8", tmp_path)  # one identity, many hosts (IRSA, instance profile)
    actions = {r.action for r in calls.requests}
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"} <= actions
    puts = [r for r in calls.requests if r.action == "s3:PutObject"]
    assert all("s3:if-none-match" in r.context or "s3:if-match" in r.context for r in puts)
    assert not _denied(calls.requests, render("recorder"), render("bucket"))


def test_a_recorder_keeps_working_on_a_host_the_compactor_has_been_through(
    fleet: MemoryStore, tmp_path: Path
) -> None:
    for hours in (20, 40, 60):
        Compactor(fleet, CONFIG).run(T0 + hours * HOUR)
    calls = S3Calls(fleet)
    _record(calls, "gpu-1", tmp_path)
    assert calls.requests
    assert not _denied(calls.requests, render("recorder"), render("bucket"))


def test_every_request_of_the_compactor_is_allowed(fleet: MemoryStore) -> None:
    calls = S3Calls(fleet)
    for hours in (20, 40, 60, 90):
        Compactor(calls, CONFIG).run(T0 + hours * HOUR)
    kinds = {(r.action, r.resource.split("/")[2]) for r in calls.requests if "/" in r.resource}
    assert ("s3:DeleteObject", "raw") in kinds and ("s3:PutObject", "compressed") in kinds
    assert not _denied(calls.requests, render("compactor"), render("bucket"))


def test_every_request_of_a_fleet_query_is_allowed_to_the_reader(fleet: MemoryStore) -> None:
    calls = S3Calls(fleet)
    repo = Repository(calls, CONFIG)
    list_hosts(repo)
    run_query(repo, Selector(metrics=("*",)), aggs=("mean",), group_by=("host",))
    read_series(repo, Selector(metrics=("fake.*",), hosts=("node-*",)))
    assert len(calls.requests) > 10
    reader = render("fleet-reader")
    assert not _denied(calls.requests, reader, render("bucket"))
    assert not [r for r in calls.requests if r.action != "s3:ListBucket" and "Put" in r.action]


def _put(key: str, **cond: str) -> Request:
    return Request("s3:PutObject", f"{BUCKET}/{PREFIX}{key}", context={**TLS, **cond})


IF_ABSENT = {"s3:if-none-match": "*"}
IF_MATCH = {"s3:if-match": '"etag"'}


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (_put("raw/h/2026/01/01/000000000001-0badf00d.k.snap"), "unconditional data put"),
        (_put("index/h/raw/000000000000.json"), "unconditional index put"),
        (_put("compressed/h/x.snapt", **IF_ABSENT), "a tier"),
        (_put("archive/h/x", **IF_ABSENT), "a tier"),
        (_put("index/h/compressed/000000000000.json", **IF_ABSENT), "a tier index"),
        (_put("index/h/raw/000000000000_1_2_abc.range", **IF_ABSENT), "a range hint"),
        (_put("marks/deletions/h/raw-0-3.json", **IF_ABSENT), "a deletion mark"),
        (_put("marks/leases/compactor.json", **IF_MATCH), "the compactor lease"),
        (_put("outside/x", **IF_ABSENT), "outside the store's prefixes"),
        (Request("s3:DeleteObject", f"{BUCKET}/{PREFIX}raw/h/x.k.snap"), "deleting data"),
        (Request("s3:DeleteObject", f"{BUCKET}/{PREFIX}marks/leases/compactor.json"), "lease"),
        (Request("s3:GetObject", f"{BUCKET}/{PREFIX}compressed/h/x"), "reading tiers"),
        (_put("catalog/h.json", **IF_MATCH), "the catalog (a recorder never writes it)"),
        (Request("s3:PutBucketPolicy", BUCKET), "bucket settings"),
        (Request("s3:PutObjectAcl", f"{BUCKET}/{PREFIX}raw/h/x"), "ACLs"),
        (Request("s3:ListBucket", BUCKET, context={"s3:prefix": PREFIX}), "listing the root"),
        (Request("s3:ListBucket", BUCKET, context={"s3:prefix": "other/"}), "another prefix"),
    ],
)
def test_the_recorder_policy_refuses(request_: Request, why: str) -> None:
    assert not allowed(request_, render("recorder"), render("bucket")), why


def test_the_recorder_policy_allows_what_a_stream_needs_for_any_host() -> None:
    recorder, bucket = render("recorder"), render("bucket")
    for host in ("gpu-1", "gpu-10", "node-a.b"):
        for key, cond in (
            (f"raw/{host}/2026/01/01/000000000000-0badf00d.k.snap", IF_ABSENT),
            (f"index/{host}/raw/000000000000.json", IF_ABSENT),
            (f"index/{host}/raw/000000000000.json", IF_MATCH),
            (f"marks/leases/{host}.json", IF_ABSENT),
        ):
            assert allowed(_put(key, **cond), recorder, bucket), key


def test_the_bucket_refuses_overwriting_data_and_plain_http_to_everyone() -> None:
    bucket = render("bucket")
    admin = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    data = "raw/h/2026/01/01/000000000000-0badf00d.k.snap"
    assert decide(_put(data), admin, bucket) == "deny"
    assert decide(_put(data, **IF_MATCH), admin, bucket) == "deny"  # replacing is overwriting
    assert allowed(_put(data, **IF_ABSENT), admin, bucket)
    assert allowed(_put("compressed/h/x"), admin, bucket)  # deterministic rewrites stay free
    plain = Request("s3:GetObject", f"{BUCKET}/{PREFIX}x", context={"aws:SecureTransport": "false"})
    assert decide(plain, admin, bucket) == "deny"
    old = Request("s3:GetObject", f"{BUCKET}/{PREFIX}x", context={**TLS, "s3:TlsVersion": "1.1"})
    assert decide(old, admin, bucket) == "deny"


def test_irsa_trust_admits_only_its_service_account() -> None:
    issuer = "oidc.eks.us-east-1.amazonaws.com/id/ABC"
    provider = f"arn:aws:iam::111122223333:oidc-provider/{issuer}"
    trust = render(
        "irsa-trust",
        oidc_provider_arn=provider,
        oidc_issuer=issuer,
        namespace="snapcloud",
        service_account="snapcloud-recorder",
    )

    def assume(sub: str, aud: str = "sts.amazonaws.com", who: str = provider) -> bool:
        ctx = {f"{issuer}:sub": sub, f"{issuer}:aud": aud}
        req = Request("sts:AssumeRoleWithWebIdentity", "*", principal=who, context=ctx)
        return allowed(req, trust)

    assert assume("system:serviceaccount:snapcloud:snapcloud-recorder")
    assert not assume("system:serviceaccount:snapcloud:snapcloud-compactor")
    assert not assume("system:serviceaccount:default:snapcloud-recorder")
    assert not assume("system:serviceaccount:snapcloud:snapcloud-recorder", aud="other")
    other = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X"
    assert not assume("system:serviceaccount:snapcloud:snapcloud-recorder", who=other)


def test_the_evaluator_refuses_what_it_cannot_judge() -> None:
    doc = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01"}},
            }
        ]
    }
    with pytest.raises(Unsupported):
        allowed(Request("s3:GetObject", f"{BUCKET}/x", context={"aws:CurrentTime": "x"}), doc)
    var = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "${aws:username}/*"}]}
    assert not allowed(Request("s3:GetObject", "alice/x"), var)  # unknown variable: no match
