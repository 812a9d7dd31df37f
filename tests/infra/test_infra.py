"""infra/: the lifecycle rules match the policy, policies are scoped, manifests parse."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from snapcloud.retention import RetentionPolicy, lifecycle_rules

INFRA = Path(__file__).resolve().parents[2] / "infra"
TF = INFRA / "terraform"


def test_lifecycle_json_is_what_snapcloud_lifecycle_show_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    on_disk = json.loads((TF / "lifecycle.json").read_text())
    assert on_disk == lifecycle_rules(RetentionPolicy())
    import snapcloud.cli._retention  # noqa: F401  (registers the commands)
    from snapcloud.cli import main

    assert main(["lifecycle", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == on_disk


def test_terraform_loads_the_lifecycle_rules_from_the_json_file() -> None:
    bucket_tf = (TF / "bucket.tf").read_text()
    assert 'jsondecode(file("${path.module}/lifecycle.json"))' in bucket_tf
    assert "for_each = local.lifecycle.Rules" in bucket_tf
    for field in ("Expiration", "Transitions", "AbortIncompleteMultipartUpload", "Filter.Prefix"):
        assert field in bucket_tf
    compose = (INFRA / "compose" / "docker-compose.yml").read_text()
    assert "../terraform/lifecycle.json:/lifecycle.json" in compose
    assert "mc ilm import" in compose


def test_bucket_is_private_encrypted_and_its_policy_is_the_template() -> None:
    tf = (TF / "bucket.tf").read_text()
    for flag in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert re.search(rf"{flag}\s*=\s*true", tf), flag
    assert "aws_s3_bucket_server_side_encryption_configuration" in tf
    # The policy itself (TLS only, data never overwritten) is judged in test_policies.py.
    assert 'templatefile("${path.module}/policies/bucket.json.tpl"' in tf


def _render(name: str, prefix: str = "fleet/") -> dict[str, Any]:
    text = (TF / "policies" / f"{name}.json.tpl").read_text()
    text = text.replace("${bucket_arn}", "arn:aws:s3:::b").replace("${prefix}", prefix)
    assert "${" not in text.replace("$${", ""), "unknown template variable"
    doc: dict[str, Any] = json.loads(text.replace("$${", "${"))
    return doc


def _resources(doc: dict[str, Any], action: str) -> list[str]:
    out: list[str] = []
    for st in doc["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if st["Effect"] == "Allow" and action in actions:
            out += st["Resource"]
    return out


def test_host_writer_only_writes_its_own_prefixes() -> None:
    doc = _render("host-writer")
    tag = "${aws:PrincipalTag/snapcloud-host}"
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:GetObject"):
        for res in _resources(doc, action):
            assert f"/{tag}" in res or f"{tag}." in res or f"{tag}/" in res, res
            assert res.startswith("arn:aws:s3:::b/fleet/")
    puts = _resources(doc, "s3:PutObject")
    assert "arn:aws:s3:::b/fleet/raw/" + tag + "/*" in puts
    assert not [r for r in puts if "/compressed/" in r or "/archive/" in r or "deletions" in r]
    [listing] = [s for s in doc["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert all(tag in p for p in listing["Condition"]["StringLike"]["s3:prefix"])


def test_reader_reads_and_compactor_rewrites_tiers() -> None:
    reader = _render("fleet-reader")
    assert _resources(reader, "s3:GetObject") == ["arn:aws:s3:::b/fleet/*"]
    assert not _resources(reader, "s3:PutObject") and not _resources(reader, "s3:DeleteObject")
    compactor = _render("compactor")
    deletes = _resources(compactor, "s3:DeleteObject")
    for tier in ("raw", "compressed", "archive", "index", "marks/deletions"):
        assert f"arn:aws:s3:::b/fleet/{tier}/*" in deletes
    assert "arn:aws:s3:::b/fleet/catalog/*" not in deletes
