"""Stored bytes and objects per tier and host, from listings (real sizes, nothing decoded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from snapcloud.backends import ObjectStore
from snapcloud.layout import (
    ARCHIVE_PREFIX,
    COMPRESSED_PREFIX,
    INDEX_PREFIX,
    MARKS_PREFIX,
    RAW_PREFIX,
    TIERS,
    host_marks_prefix,
    tier_data_prefix,
    tier_index_prefix,
)
from snapcloud.models import validate_host

__all__ = ["TierUsage", "storage_by_tier"]


@dataclass(frozen=True)
class TierUsage:
    """One host's objects in one tier: data objects and index segments, counted apart.

    ``tier`` is ``raw``, ``compressed``, ``archive``, or ``marks`` (deletion marks
    waiting for their delay; their ``objects`` are the marks themselves).
    """

    host: str
    tier: str
    objects: int
    bytes: int
    index_objects: int = 0
    index_bytes: int = 0

    @property
    def total_objects(self) -> int:
        """Data and index objects together."""
        return self.objects + self.index_objects

    @property
    def total_bytes(self) -> int:
        """Data and index bytes together."""
        return self.bytes + self.index_bytes


def _hosts(objects: ObjectStore) -> list[str]:
    found: set[str] = set()
    for prefix in (INDEX_PREFIX, RAW_PREFIX, COMPRESSED_PREFIX, ARCHIVE_PREFIX, MARKS_PREFIX):
        found.update(h.rstrip("/") for h in objects.list_dirs(prefix))
    return sorted(found)


def _sum(objects: ObjectStore, prefix: str) -> tuple[int, int]:
    n = size = 0
    for info in objects.list(prefix):
        n += 1
        size += info.size
    return n, size


def storage_by_tier(objects: ObjectStore, hosts: Sequence[str] | None = None) -> list[TierUsage]:
    """Objects and bytes per (host, tier), one listing per prefix; rows sorted by host, tier."""
    names = [validate_host(h) for h in hosts] if hosts else _hosts(objects)
    rows = []
    for host in names:
        for tier in TIERS:
            n, size = _sum(objects, tier_data_prefix(tier, host))
            ni, isize = _sum(objects, tier_index_prefix(tier, host))
            rows.append(TierUsage(host, tier, n, size, ni, isize))
        n, size = _sum(objects, host_marks_prefix(host))
        rows.append(TierUsage(host, "marks", n, size))
    return rows
