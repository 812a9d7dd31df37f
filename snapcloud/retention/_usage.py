"""Stored bytes and objects per tier and host, from listings (real sizes, nothing decoded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from snapcloud.backends import ObjectStore
from snapcloud.models import validate_host
from snapcloud.store._tiers import MARKS_PREFIX

__all__ = ["TierUsage", "storage_by_tier"]

USAGE_TIERS = ("raw", "compressed", "archive")


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
    for prefix in ("index/", *(f"{t}/" for t in USAGE_TIERS), MARKS_PREFIX):
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
        for tier in USAGE_TIERS:
            n, size = _sum(objects, f"{tier}/{host}/")
            ni, isize = _sum(objects, f"index/{host}/{tier}/")
            rows.append(TierUsage(host, tier, n, size, ni, isize))
        n, size = _sum(objects, f"{MARKS_PREFIX}{host}/")
        rows.append(TierUsage(host, "marks", n, size))
    return rows
