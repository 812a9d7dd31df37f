"""What a compactor run did, or (``--dry-run``) would do: per host and tier, and requests."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from snapcloud.layout import tier_counted

__all__ = ["CompactionReport", "HostReport", "TierTally"]

TALLY_TIERS = ("raw", "compressed", "archive", "marks")


@dataclass
class TierTally:
    """Objects and bytes written, marked for deletion, and deleted in one tier."""

    written_objects: int = 0
    written_bytes: int = 0
    marked_objects: int = 0
    marked_bytes: int = 0
    deleted_objects: int = 0
    deleted_bytes: int = 0

    def add(self, other: TierTally) -> None:
        """Add ``other``'s counts to these."""
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


def tier_of(key: str) -> str:
    """The tally tier of a key: data and index objects count in their tier, the rest
    (marks, leases, the catalog) as ``marks``."""
    return tier_counted(key) or "marks"


@dataclass
class HostReport:
    """One host's part of a run."""

    host: str
    compressed: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    marks_written: int = 0
    marks_deleted: int = 0
    orphans_marked: int = 0
    orphans_deleted: int = 0
    range_hints_written: int = 0
    range_hints_deleted: int = 0
    samples_compacted: int = 0
    problems: list[str] = field(default_factory=list)
    tiers: dict[str, TierTally] = field(default_factory=dict)
    catalog_refreshed: bool = False  # its catalog entry was written (step 8; not in dry runs)

    def tally(self, key: str) -> TierTally:
        """The tally of the tier ``key`` belongs to."""
        return self.tiers.setdefault(tier_of(key), TierTally())


@dataclass
class CompactionReport:
    """A whole run: hosts, totals per tier, requests by operation, and timing."""

    now_ns: int
    dry_run: bool
    hosts: list[HostReport] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def totals(self) -> dict[str, TierTally]:
        """Per-tier sums over all hosts."""
        out = {t: TierTally() for t in TALLY_TIERS}
        for h in self.hosts:
            for tier, tally in h.tiers.items():
                out.setdefault(tier, TierTally()).add(tally)
        return out

    @property
    def problems(self) -> list[str]:
        """Every problem of every host, prefixed with the host."""
        return [f"{h.host}: {p}" for h in self.hosts for p in h.problems]

    @property
    def samples_compacted(self) -> int:
        """Samples read and rewritten into a higher tier."""
        return sum(h.samples_compacted for h in self.hosts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (the CLI's ``--json``)."""
        return {
            "now_ns": self.now_ns,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
            "samples_compacted": self.samples_compacted,
            "requests": dict(sorted(self.requests.items())),
            "tiers": {t: asdict(v) for t, v in self.totals().items()},
            "hosts": [
                {**asdict(h), "tiers": {t: asdict(v) for t, v in h.tiers.items()}}
                for h in self.hosts
            ],
        }
