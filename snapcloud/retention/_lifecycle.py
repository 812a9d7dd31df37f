"""The retention policy as an S3 bucket lifecycle configuration: the safety net.

The compactor is the primary mechanism; these rules only fire when it has not
run for a grace period. Expiration counts from an object's creation, so each
tier prefix expires ``grace`` days after the compactor would have removed its
objects at the latest:

- ``raw/``: created with the data; compacted ``raw_max_age`` after its group
  ends, deleted ``delete_delay`` later;
- ``compressed/``: created at least ``raw_max_age`` after the data; archived
  ``compressed_max_age`` after it, up to a day later (archives batch whole days);
- ``archive/``: created at least ``compressed_max_age`` after the data; expires
  ``archive_max_age`` after it.

Plus: abort incomplete multipart uploads after a day, and optionally move the
archive to an instant-retrieval storage class. Index segments (``index/``) and
marks (``marks/``) are left to the compactor: a prefix cannot select a tier there.
"""

from __future__ import annotations

import math
from typing import Any

from snapcloud.backends import LifecycleStore, ObjectStore, has_lifecycle
from snapcloud.errors import ConfigError
from snapcloud.retention._policy import DAY_NS, RetentionPolicy

__all__ = ["RULE_PREFIX", "apply_lifecycle", "get_lifecycle", "lifecycle_rules"]

RULE_PREFIX = "snapcloud-"


def _days(ns: int) -> int:
    return max(1, math.ceil(ns / DAY_NS))


def _rule_id(name: str, prefix: str) -> str:
    slug = prefix.strip("/").replace("/", "-")
    return f"{RULE_PREFIX}{name}" + (f"-{slug}" if slug else "")


def lifecycle_rules(policy: RetentionPolicy, prefix: str = "") -> dict[str, Any]:
    """The lifecycle configuration (S3 API shape: ``{"Rules": [...]}``) for ``policy``."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    grace = policy.lifecycle_grace_days
    delay = policy.delete_delay_ns
    raw = _days(policy.raw_max_age_ns + delay) + grace
    compressed = (
        _days(policy.compressed_max_age_ns - policy.raw_max_age_ns + DAY_NS + delay) + grace
    )
    archive = _days(policy.archive_max_age_ns - policy.compressed_max_age_ns + delay) + grace
    rules: list[dict[str, Any]] = []
    for name, days in (("raw", raw), ("compressed", compressed), ("archive", archive)):
        rule: dict[str, Any] = {
            "ID": _rule_id(name, prefix),
            "Filter": {"Prefix": f"{prefix}{name}/"},
            "Status": "Enabled",
            "Expiration": {"Days": days},
        }
        if name == "archive" and policy.archive_storage_class is not None:
            rule["Transitions"] = [
                {
                    "Days": policy.archive_transition_days,
                    "StorageClass": policy.archive_storage_class,
                }
            ]
        rules.append(rule)
    rules.append(
        {
            "ID": _rule_id("abort-multipart", prefix),
            "Filter": {"Prefix": prefix},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    )
    return {"Rules": rules}


def _bucket(store: ObjectStore) -> LifecycleStore:
    if not has_lifecycle(store):
        raise ConfigError("bucket lifecycle rules need an s3:// store", field="store")
    return store


def get_lifecycle(store: ObjectStore) -> dict[str, Any]:
    """The bucket's lifecycle configuration (``{"Rules": []}`` when it has none).

    Raises ``ConfigError`` for a store without lifecycle rules, ``BackendError``."""
    return _bucket(store).get_lifecycle()


def apply_lifecycle(store: ObjectStore, policy: RetentionPolicy) -> dict[str, Any]:
    """Put the policy's rules on the store's bucket, keeping rules that are not snapcloud's
    for this prefix; returns the configuration written. Raises ``ConfigError`` for a store
    without lifecycle rules, ``BackendError``."""
    bucket = _bucket(store)
    ours = lifecycle_rules(policy, bucket.lifecycle_prefix)["Rules"]
    ids = {r["ID"] for r in ours}
    kept = [r for r in bucket.get_lifecycle()["Rules"] if r.get("ID") not in ids]
    config = {"Rules": kept + ours}
    bucket.put_lifecycle(config)
    return config
