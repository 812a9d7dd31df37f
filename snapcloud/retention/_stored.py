"""The store's own policy: ``config/policy.json``, read by every writer and compactor.

One small checked-JSON object (``snapcloud/_checked_json.py``) holds what must be the
same for everyone who writes to or compacts a store: the keyframe interval and the
whole retention policy (tier ages, deletion delay, orphan age, archive resolutions,
zstd levels, frame bound, lifecycle grace and storage class). It is written with a
conditional put (if-absent for the first, if-match on the ETag read otherwise), so two
operators changing it at once cannot lose one change silently: the second gets
``ConflictError`` and reads again. A store without the object uses the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from snapcloud._checked_json import dump_checked, load_checked
from snapcloud.backends import ObjectStore
from snapcloud.errors import ConfigError, ConflictError, ObjectNotFound, PreconditionFailed
from snapcloud.layout import POLICY_KEY
from snapcloud.models import SnapshotConfig
from snapcloud.retention._policy import RetentionPolicy

__all__ = ["StorePolicy", "StoredPolicy", "read_policy", "update_policy"]


class StorePolicy(BaseModel):
    """The settings every writer and compactor of one store must share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    keyframe_interval: int = Field(60, ge=1, le=100_000)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)

    def snapshot_config(self, base: SnapshotConfig | None = None) -> SnapshotConfig:
        """``base`` (default ``SnapshotConfig()``) with this policy's interval and tier ages."""
        r = self.retention
        return (base or SnapshotConfig()).model_copy(
            update={
                "keyframe_interval": self.keyframe_interval,
                "raw_max_age_ns": r.raw_max_age_ns,
                "compressed_max_age_ns": r.compressed_max_age_ns,
                "archive_max_age_ns": r.archive_max_age_ns,
                "delete_delay_ns": r.delete_delay_ns,
            }
        )


@dataclass(frozen=True)
class StoredPolicy:
    """A store's policy and the ETag it was read with (``None``: not stored, the defaults)."""

    policy: StorePolicy
    etag: str | None

    @property
    def stored(self) -> bool:
        return self.etag is not None


def read_policy(objects: ObjectStore) -> StoredPolicy:
    """The policy ``objects`` holds, or the defaults. Raises ``CorruptError`` for a bad one."""
    try:
        got = objects.get(POLICY_KEY)
    except ObjectNotFound:
        return StoredPolicy(StorePolicy(), None)
    policy = load_checked(StorePolicy, got.data, what="store policy", version=1, key=POLICY_KEY)
    return StoredPolicy(policy, got.etag)


def update_policy(
    objects: ObjectStore, current: StoredPolicy, changes: dict[str, Any]
) -> StoredPolicy:
    """Write ``current`` with ``changes`` (``keyframe_interval`` or ``RetentionPolicy`` fields).

    The put is conditional on ``current``'s ETag (if-absent when it was not stored).
    Raises ``ConfigError`` for an unknown field or a policy that does not validate
    (e.g. raw data kept longer than compressed), ``ConflictError`` when the stored
    policy changed since ``current`` was read.
    """
    policy = _changed(current.policy, changes)
    data = dump_checked(policy)
    try:
        if current.etag is None:
            etag = objects.put(POLICY_KEY, data, if_absent=True)
        else:
            etag = objects.put(POLICY_KEY, data, if_match=current.etag)
    except PreconditionFailed:
        raise ConflictError(
            f"the store policy at {POLICY_KEY} changed since it was read; read it and retry",
            key=POLICY_KEY,
        ) from None
    return StoredPolicy(policy, etag)


def _changed(policy: StorePolicy, changes: dict[str, Any]) -> StorePolicy:
    top = {k: v for k, v in changes.items() if k == "keyframe_interval"}
    retention = {k: v for k, v in changes.items() if k != "keyframe_interval"}
    unknown = set(retention) - set(RetentionPolicy.model_fields)
    if unknown:
        raise ConfigError(f"policy: unknown setting(s) {', '.join(sorted(unknown))}")
    try:
        merged = {**policy.retention.model_dump(), **retention}
        return StorePolicy(**{**policy.model_dump(), **top, "retention": merged})
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p != "retention")
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"policy: {where + ': ' if where else ''}{msg}", field=where) from None
