"""Retention tiers: the compactor (raw -> compressed -> archive -> gone), deletion marks,
garbage collection, the S3 lifecycle safety net, and storage per tier.

``Lease`` and ``DeletionMark`` are ``snapcloud.coordination``'s, ``COMPACTOR_LEASE_KEY``
and ``POLICY_KEY`` ``snapcloud.layout``'s, re-exported here where they have always been.
"""

from __future__ import annotations

from snapcloud.coordination import DeletionMark, Lease
from snapcloud.layout import COMPACTOR_LEASE_KEY, POLICY_KEY
from snapcloud.retention._compactor import Compactor
from snapcloud.retention._downsample import Downsampler
from snapcloud.retention._lifecycle import apply_lifecycle, get_lifecycle, lifecycle_rules
from snapcloud.retention._policy import DAY_NS, HOUR_NS, MINUTE_NS, RetentionPolicy
from snapcloud.retention._report import CompactionReport, HostReport, TierTally
from snapcloud.retention._stored import (
    StoredPolicy,
    StorePolicy,
    read_policy,
    update_policy,
)
from snapcloud.retention._usage import TierUsage, storage_by_tier

__all__ = [
    "COMPACTOR_LEASE_KEY",
    "DAY_NS",
    "HOUR_NS",
    "MINUTE_NS",
    "POLICY_KEY",
    "CompactionReport",
    "Compactor",
    "DeletionMark",
    "Downsampler",
    "HostReport",
    "Lease",
    "RetentionPolicy",
    "StorePolicy",
    "StoredPolicy",
    "TierTally",
    "TierUsage",
    "apply_lifecycle",
    "get_lifecycle",
    "lifecycle_rules",
    "read_policy",
    "storage_by_tier",
    "update_policy",
]
