"""The retention policy: tier ages, the deletion delay, archive resolutions, lifecycle grace."""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from snapcloud.models import SnapshotConfig
from snapcloud.timeparse import format_duration

__all__ = ["DAY_NS", "HOUR_NS", "MINUTE_NS", "RetentionPolicy", "TierTarget"]

MINUTE_NS = 60 * 10**9
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS

TierTarget = Literal["raw", "compressed", "archive", "gone"]

#: Storage classes a GET still reads at once (no restore): the only ones an archive may move to.
INSTANT_CLASSES = ("STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR")


class RetentionPolicy(BaseModel):
    """When groups move between tiers, how they are stored there, and the S3 safety net."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_max_age_ns: int = Field(1 * DAY_NS, ge=0)
    compressed_max_age_ns: int = Field(30 * DAY_NS, ge=0)
    archive_max_age_ns: int = Field(365 * DAY_NS, ge=0)
    delete_delay_ns: int = Field(2 * HOUR_NS, ge=0)
    orphan_age_ns: int = Field(1 * HOUR_NS, ge=0)
    resolutions_ns: tuple[int, ...] = (MINUTE_NS, HOUR_NS)
    compressed_level: int = Field(19, ge=1, le=22)
    archive_level: int = Field(19, ge=1, le=22)
    max_frame_bytes: int = Field(32 * 2**20, ge=1)
    lifecycle_grace_days: int = Field(7, ge=0, le=3650)
    archive_storage_class: str | None = None
    archive_transition_days: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> RetentionPolicy:
        ages = [
            ("raw_max_age", self.raw_max_age_ns),
            ("compressed_max_age", self.compressed_max_age_ns),
            ("archive_max_age", self.archive_max_age_ns),
        ]
        for (lo, lo_ns), (hi, hi_ns) in itertools.pairwise(ages):
            if lo_ns > hi_ns:
                raise ValueError(
                    f"tier ages must satisfy raw <= compressed <= archive: {lo} "
                    f"({format_duration(lo_ns)}) is longer than {hi} ({format_duration(hi_ns)})"
                )
        if not self.resolutions_ns or any(r <= 0 for r in self.resolutions_ns):
            raise ValueError("resolutions_ns must be positive nanoseconds")
        if len(set(self.resolutions_ns)) != len(self.resolutions_ns):
            raise ValueError("resolutions_ns must not repeat")
        if self.archive_storage_class is not None:
            if self.archive_storage_class not in INSTANT_CLASSES:
                raise ValueError(
                    f"archive_storage_class must be one of {', '.join(INSTANT_CLASSES)} "
                    "(classes that need a restore before a GET would break reads)"
                )
            if self.archive_transition_days is None:
                raise ValueError("archive_storage_class needs archive_transition_days")
        return self

    @classmethod
    def from_config(cls, config: SnapshotConfig | None = None, **overrides: Any) -> RetentionPolicy:
        """The policy whose tier ages and deletion delay are those of ``config``."""
        config = config or SnapshotConfig()
        base: dict[str, Any] = {
            "raw_max_age_ns": config.raw_max_age_ns,
            "compressed_max_age_ns": config.compressed_max_age_ns,
            "archive_max_age_ns": config.archive_max_age_ns,
            "delete_delay_ns": config.delete_delay_ns,
        }
        base.update(overrides)
        return cls(**base)

    def target(self, end_ns: int, now_ns: int) -> TierTarget:
        """The tier data whose last window ends at ``end_ns`` belongs in at ``now_ns``."""
        age = now_ns - end_ns
        if age >= self.archive_max_age_ns:
            return "gone"
        if age >= self.compressed_max_age_ns:
            return "archive"
        if age >= self.raw_max_age_ns:
            return "compressed"
        return "raw"
