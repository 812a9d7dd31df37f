"""The policy as a bucket lifecycle configuration, on the moto server; the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from snapcloud.backends import FileStore, MemoryStore, S3Store
from snapcloud.errors import ConfigError
from snapcloud.retention import (
    DAY_NS,
    RetentionPolicy,
    apply_lifecycle,
    get_lifecycle,
    lifecycle_rules,
)
from tests.retention.scenario import HOUR, T0, write_host


def _by_id(doc: dict) -> dict:  # type: ignore[type-arg]
    return {r["ID"]: r for r in doc["Rules"]}


def test_rules_follow_the_policy() -> None:
    rules = _by_id(lifecycle_rules(RetentionPolicy()))
    assert rules["snapcloud-raw"]["Filter"] == {"Prefix": "raw/"}
    # raw: 1 d + 2 h delay -> 2 d, + 7 d grace; compressed: 29 d + 1 d (whole-day batches)
    # + 2 h -> 31 d, + 7; archive: 335 d + 2 h -> 336 d, + 7.
    assert rules["snapcloud-raw"]["Expiration"] == {"Days": 9}
    assert rules["snapcloud-compressed"]["Expiration"] == {"Days": 38}
    assert rules["snapcloud-archive"]["Expiration"] == {"Days": 343}
    assert rules["snapcloud-abort-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    assert "Transitions" not in rules["snapcloud-archive"]
    policy = RetentionPolicy(
        raw_max_age_ns=DAY_NS,
        lifecycle_grace_days=0,
        archive_storage_class="GLACIER_IR",
        archive_transition_days=30,
    )
    rules = _by_id(lifecycle_rules(policy, "fleet/a"))
    assert rules["snapcloud-archive-fleet-a"]["Filter"] == {"Prefix": "fleet/a/archive/"}
    assert rules["snapcloud-archive-fleet-a"]["Transitions"] == [
        {"Days": 30, "StorageClass": "GLACIER_IR"}
    ]
    assert rules["snapcloud-raw-fleet-a"]["Expiration"] == {"Days": 2}
    with pytest.raises(ValueError, match="restore"):
        RetentionPolicy(archive_storage_class="GLACIER", archive_transition_days=1)


def test_apply_on_the_moto_server_keeps_other_rules(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    s3 = boto3.client("s3", endpoint_url=endpoint)
    other = {
        "ID": "logs",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 3},
    }
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [other]})
    store = S3Store(bucket, "fleet", endpoint_url=endpoint)
    policy = RetentionPolicy()
    written = apply_lifecycle(store, policy)
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert _by_id({"Rules": got}) == _by_id(written)
    assert "logs" in _by_id({"Rules": got})
    ours = lifecycle_rules(policy, "fleet/")["Rules"]
    assert all(_by_id({"Rules": got})[r["ID"]] == r for r in ours)
    apply_lifecycle(store, policy)  # again: replaced, not duplicated
    assert len(get_lifecycle(store)["Rules"]) == len(ours) + 1


def test_get_lifecycle_of_a_bucket_without_one(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    assert get_lifecycle(S3Store(bucket, endpoint_url=endpoint)) == {"Rules": []}


def test_apply_needs_s3() -> None:
    with pytest.raises(ConfigError):
        apply_lifecycle(MemoryStore(), RetentionPolicy())  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- CLI


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    import snapcloud.cli._retention  # noqa: F401  (registers the commands)
    from snapcloud.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_lifecycle_show_and_apply(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    code, out, _ = _run(capsys, "lifecycle", "show", "--json")
    assert code == 0 and json.loads(out) == lifecycle_rules(RetentionPolicy())
    url = f"s3://{bucket}/fleet"
    code, out, _ = _run(
        capsys, "lifecycle", "apply", "--store", url, "--endpoint-url", endpoint, "--json"
    )
    assert code == 0 and _by_id(json.loads(out)) == _by_id(
        lifecycle_rules(RetentionPolicy(), "fleet/")
    )
    code, out, _ = _run(
        capsys,
        "lifecycle",
        "show",
        "--current",
        "--store",
        url,
        "--endpoint-url",
        endpoint,
        "--json",
    )
    assert code == 0 and len(json.loads(out)["Rules"]) == 4
    code, _, err = _run(capsys, "lifecycle", "apply", "--store", "memory://x")
    assert code == 2 and "s3://" in err
    code, _, err = _run(capsys, "lifecycle", "show", "--archive-storage-class", "GLACIER")
    assert code == 2 and "archive_storage_class" in err


def test_cli_compact_dry_run_then_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_host(FileStore(store), "gpu-1", 12)
    url = f"file://{store}"
    # The CLI uses the default ages (raw: 1 day), so nothing is due 14 h in...
    code, out, _ = _run(capsys, "compact", "--store", url, "--now", str(T0 + 14 * HOUR), "--json")
    assert code == 0 and json.loads(out)["tiers"]["compressed"]["written_objects"] == 0
    # ...and the two sealed groups are a day later. The dry run writes nothing.
    later = "2026-01-02T10:00:00Z"
    code, out, _ = _run(capsys, "compact", "--store", url, "--now", later, "--dry-run", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["dry_run"]
    assert plan["tiers"]["compressed"]["written_objects"] == 4  # 2 objects + 2 indexes
    assert plan["requests"]["put"] == 6 and plan["requests"]["get"] > 0  # + 2 marks
    assert not (store / "compressed").exists()
    code, out, _ = _run(capsys, "compact", "--store", url, "--now", later)
    assert code == 0 and "compress 2 group(s)" in out and "requests:" in out
    assert len(list((store / "compressed").glob("**/*.snapt"))) == 2
    code, _, err = _run(capsys, "compact", "--store", url, "--now", "yesterday")
    assert code == 2 and "--now" in err
