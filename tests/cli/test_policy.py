"""The store's policy: ``snapcloud policy show|set``, and every writer and compactor using it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapcloud.backends import FileStore, MemoryStore
from snapcloud.cli import main
from snapcloud.errors import ConfigError, ConflictError
from snapcloud.retention import (
    DAY_NS,
    HOUR_NS,
    MINUTE_NS,
    POLICY_KEY,
    RetentionPolicy,
    StorePolicy,
    lifecycle_rules,
    read_policy,
    update_policy,
)
from tests.retention.scenario import write_host


@pytest.fixture
def store(tmp_path: Path) -> str:
    """An existing, empty store (read-only commands never create one)."""
    (tmp_path / "store").mkdir()
    return f"file://{tmp_path / 'store'}"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_show_without_a_stored_policy_gives_the_defaults(
    capsys: pytest.CaptureFixture[str], store: str
) -> None:
    code, out, err = run(capsys, "policy", "show", "--store", store, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["stored"] is False and doc["key"] == POLICY_KEY
    assert doc["policy"] == StorePolicy().model_dump(mode="json")
    code, out, _ = run(capsys, "policy", "show", "--store", store)
    assert code == 0 and "not stored: the defaults" in out and "raw_max_age" in out


def test_set_stores_a_checked_object_and_show_reads_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: str
) -> None:
    args = ["policy", "set", "--store", store, "--json", "--keyframe-interval", "30"]
    args += ["--raw-max-age", "36h", "--resolutions", "5m,1h", "--delete-delay", "0"]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    want = StorePolicy(
        keyframe_interval=30,
        retention=RetentionPolicy(
            raw_max_age_ns=36 * HOUR_NS,
            resolutions_ns=(5 * MINUTE_NS, HOUR_NS),
            delete_delay_ns=0,
        ),
    )
    assert json.loads(out)["policy"] == want.model_dump(mode="json")
    stored = read_policy(FileStore(tmp_path / "store"))
    assert stored.stored and stored.policy == want
    # a second change starts from the stored policy, not from the defaults
    code, out, err = run(capsys, "policy", "set", "--store", store, "--orphan-age", "3h", "--json")
    assert code == 0, err
    got = StorePolicy.model_validate(json.loads(out)["policy"])
    assert got.keyframe_interval == 30 and got.retention.orphan_age_ns == 3 * HOUR_NS
    code, out, _ = run(capsys, "policy", "show", "--store", store)
    assert "stored at config/policy.json" in out and "1d12h" in out and "5m,1h" in out
    code, out, _ = run(capsys, "policy", "set", "--store", store, "--reset", "--json")
    assert json.loads(out)["policy"] == StorePolicy().model_dump(mode="json")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["--raw-max-age", "40d"],
            ["raw_max_age (40d) is longer than compressed_max_age (30d)"],
        ),
        (
            ["--compressed-max-age", "400d"],
            ["compressed_max_age (400d) is longer than archive_max_age (365d)"],
        ),
        (["--raw-max-age", "-1d"], ["--raw-max-age", "'-1d'"]),
        (["--delete-delay=-2h"], ["--delete-delay"]),
        (["--archive-max-age", "0"], ["--archive-max-age", "'0'"]),
        (["--resolutions", "1m,1m"], ["resolutions_ns must not repeat"]),
        (["--resolutions", "1m,soon"], ["--resolutions", "'soon'"]),
        (["--keyframe-interval", "0"], ["--keyframe-interval"]),
        (["--compressed-level", "23"], ["--compressed-level"]),
        (["--archive-storage-class", "GLACIER"], ["archive_storage_class must be one of"]),
        (["--archive-storage-class", "GLACIER_IR"], ["needs archive_transition_days"]),
        ([], ["nothing to set"]),
    ],
)
def test_nonsense_is_one_line_exit_2_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    store: str,
    args: list[str],
    needles: list[str],
) -> None:
    code, _, err = run(capsys, "policy", "set", "--store", store, "--keyframe-interval", "7")
    assert code == 0, err
    before = (tmp_path / "store" / POLICY_KEY).read_bytes()
    code, _, err = run(capsys, "policy", "set", "--store", store, *args)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(n in err for n in needles), err
    assert (tmp_path / "store" / POLICY_KEY).read_bytes() == before


def test_a_stale_read_cannot_overwrite_a_newer_policy() -> None:
    objects = MemoryStore()
    first = read_policy(objects)
    update_policy(objects, first, {"keyframe_interval": 10})
    with pytest.raises(ConflictError, match="changed since it was read"):
        update_policy(objects, first, {"keyframe_interval": 20})  # both saw "not stored"
    second = read_policy(objects)
    third = update_policy(objects, second, {"raw_max_age_ns": 2 * DAY_NS})
    with pytest.raises(ConflictError):
        update_policy(objects, second, {"keyframe_interval": 30})  # saw the older ETag
    assert read_policy(objects).policy == third.policy
    assert third.policy.keyframe_interval == 10


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        update_policy(MemoryStore(), read_policy(MemoryStore()), {"raw_age": 1})


def test_a_corrupted_policy_is_refused_by_every_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: str
) -> None:
    run(capsys, "policy", "set", "--store", store, "--keyframe-interval", "5")
    path = tmp_path / "store" / POLICY_KEY
    path.write_bytes(path.read_bytes().replace(b'"keyframe_interval":5', b'"keyframe_interval":6'))
    for args in (["policy", "show"], ["compact", "--dry-run"], ["demo", "--windows", "1"]):
        code, _, err = run(capsys, *args, "--store", store)
        assert code == 2 and "store policy checksum mismatch" in err, (args, err)


def test_import_and_record_use_the_stored_keyframe_interval(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: str
) -> None:
    csv = tmp_path / "m.csv"
    rows = "".join(f"2026-01-01 00:0{i}:00,{i}.5\n" for i in range(5))
    csv.write_text("timestamp,value\n" + rows)
    run(capsys, "policy", "set", "--store", store, "--keyframe-interval", "2")
    code, _, err = run(capsys, "import", "--host", "h", "--store", store, str(csv))
    assert code == 0, err
    code, out, _ = run(capsys, "ls", "--host", "h", "--store", store, "--json")
    assert [(e["kind"], e["base"]) for e in json.loads(out)] == [
        ("k", 0),
        ("d", 0),
        ("k", 2),
        ("d", 2),
        ("k", 4),
    ]
    rec = ["record", "--store", store, "--host", "r", "--no-gpu", "--duration", "1.5"]
    code, _, err = run(capsys, *rec, "--interval", "0.1", "--window", "0.3")
    assert code == 0, err
    code, out, _ = run(capsys, "ls", "--host", "r", "--store", store, "--json")
    kinds = [e["kind"] for e in json.loads(out)]
    assert len(kinds) >= 3 and kinds[:3] == ["k", "d", "k"], kinds


def test_compact_follows_the_stored_ages(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "store"
    write_host(FileStore(path), "gpu-1", 12)
    url = f"file://{path}"
    later = "2026-01-02T10:00:00Z"
    code, out, _ = run(capsys, "compact", "--store", url, "--now", later, "--dry-run", "--json")
    assert code == 0 and json.loads(out)["tiers"]["compressed"]["written_objects"] == 4
    run(capsys, "policy", "set", "--store", url, "--raw-max-age", "3d")
    code, out, _ = run(capsys, "compact", "--store", url, "--now", later, "--dry-run", "--json")
    assert code == 0 and json.loads(out)["tiers"]["compressed"]["written_objects"] == 0


def test_lifecycle_rules_follow_the_stored_policy(
    capsys: pytest.CaptureFixture[str], s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    url = f"s3://{bucket}/fleet"
    s3 = ["--store", url, "--endpoint-url", endpoint]
    args = ["--raw-max-age", "3d", "--lifecycle-grace-days", "2", "--delete-delay", "1h"]
    code, _, err = run(capsys, "policy", "set", *s3, *args)
    assert code == 0, err
    policy = RetentionPolicy(
        raw_max_age_ns=3 * DAY_NS, lifecycle_grace_days=2, delete_delay_ns=HOUR_NS
    )
    code, out, err = run(capsys, "lifecycle", "show", *s3, "--json")
    assert code == 0, err
    assert json.loads(out) == lifecycle_rules(policy, "fleet/")
    assert json.loads(out) != lifecycle_rules(RetentionPolicy(), "fleet/")
    # a flag still overrides the stored value for one run
    code, out, _ = run(capsys, "lifecycle", "show", *s3, "--grace-days", "9", "--json")
    want = lifecycle_rules(policy.model_copy(update={"lifecycle_grace_days": 9}), "fleet/")
    assert json.loads(out) == want
    code, out, err = run(capsys, "lifecycle", "apply", *s3, "--json")
    assert code == 0, err
    code, out, _ = run(capsys, "lifecycle", "show", "--current", *s3, "--json")
    days = {r["ID"]: r.get("Expiration", {}).get("Days") for r in json.loads(out)["Rules"]}
    want_days = {r["ID"]: r.get("Expiration", {}).get("Days") for r in want["Rules"]}
    assert days != want_days  # apply used the stored grace (2), not the one-off 9
    applied = lifecycle_rules(policy, "fleet/")
    assert days == {r["ID"]: r.get("Expiration", {}).get("Days") for r in applied["Rules"]}
