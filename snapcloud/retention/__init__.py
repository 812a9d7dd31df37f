"""Retention tiers: the compactor (raw -> compressed -> archive -> gone), deletion marks,
garbage collection, the S3 lifecycle safety net, and storage per tier."""

from __future__ import annotations

from snapcloud.retention._compactor import PAUSE_ENV, Compactor
from snapcloud.retention._downsample import Downsampler
from snapcloud.retention._lease import COMPACTOR_LEASE_KEY, Lease
from snapcloud.retention._lifecycle import apply_lifecycle, get_lifecycle, lifecycle_rules
from snapcloud.retention._marks import DeletionMark
from snapcloud.retention._policy import DAY_NS, HOUR_NS, MINUTE_NS, RetentionPolicy
from snapcloud.retention._report import CompactionReport, HostReport, TierTally
from snapcloud.retention._usage import TierUsage, storage_by_tier

__all__ = [
    "COMPACTOR_LEASE_KEY",
    "DAY_NS",
    "HOUR_NS",
    "MINUTE_NS",
    "PAUSE_ENV",
    "CompactionReport",
    "Compactor",
    "DeletionMark",
    "Downsampler",
    "HostReport",
    "Lease",
    "RetentionPolicy",
    "TierTally",
    "TierUsage",
    "apply_lifecycle",
    "get_lifecycle",
    "lifecycle_rules",
    "storage_by_tier",
]
