"""Tier index segments: the index of one compressed or archive object, beside ``IndexSegment``.

A tier segment lives at ``index/{host}/{tier}/{first}-{last}_{start}_{end}.json``
(``snapcloud.layout.tier_index_key``): its key names the seq range it covers and
its time bounds, so a reader resolves which tier serves each group, and prunes
by time, from listings alone. Its entries are stored column-wise; like a raw
segment it carries a CRC32C over its canonical JSON and is checked on read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from snapcloud._checked_json import dump_checked, load_checked
from snapcloud.codec import META_TIER
from snapcloud.errors import CorruptError
from snapcloud.index._segment import IndexEntry
from snapcloud.layout import tier_index_key
from snapcloud.models import ProfileSnapshot

__all__ = ["TierSegment"]

_COLUMNS = (
    "seq",
    "window_start",
    "window_end",
    "fingerprint",
    "metric_set",
    "stored_bytes",
    "raw_bytes",
    "samples",
    "checksum",
    "resolution_ns",
)


class TierSegment(BaseModel):
    """The index of one compressed or archive object, its entries stored column-wise.

    Compressed: one entry per snapshot (self-contained: kind ``k``, base = seq).
    Archive: one entry per aggregate frame, ``resolution_ns`` per entry; its metric
    ids name the *source* metrics. Every entry's ``key`` is the tier object's key.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    host: str
    tier: Literal["compressed", "archive"]
    first_seq: int = Field(ge=0)
    last_seq: int = Field(ge=0)
    start_ns: int
    end_ns: int
    key: str
    object_bytes: int = Field(ge=0)
    groups: list[tuple[int, int]]
    source_snapshots: int = Field(ge=0)
    source_samples: int = Field(ge=0)
    created_ns: int
    names: list[str]
    metric_sets: list[list[int]]
    fingerprints: list[str]
    seq: list[int]
    window_start: list[int]
    window_end: list[int]
    fingerprint: list[int]
    metric_set: list[int]
    stored_bytes: list[int]
    raw_bytes: list[int]
    samples: list[int]
    checksum: list[int]
    resolution_ns: list[int]
    _entries: list[IndexEntry] | None = PrivateAttr(default=None)

    @property
    def index_key(self) -> str:
        """Where this segment is stored."""
        return tier_index_key(
            self.tier, self.host, self.first_seq, self.last_seq, self.start_ns, self.end_ns
        )

    @property
    def entries(self) -> list[IndexEntry]:
        """The entries as ``IndexEntry`` objects (built once, trusted: the segment is checked)."""
        if self._entries is None:
            self._entries = [
                IndexEntry.model_construct(
                    seq=self.seq[i],
                    kind="k",
                    base=self.seq[i],
                    window_start=self.window_start[i],
                    window_end=self.window_end[i],
                    fingerprint=self.fingerprints[self.fingerprint[i]],
                    metrics=tuple(self.metric_sets[self.metric_set[i]]),
                    stored_bytes=self.stored_bytes[i],
                    raw_bytes=self.raw_bytes[i],
                    samples=self.samples[i],
                    checksum=self.checksum[i],
                    key=self.key,
                )
                for i in range(len(self.seq))
            ]
        return self._entries

    def metric_names(self, entry: IndexEntry) -> list[str]:
        """The (source) metric names of one entry."""
        return [self.names[i] for i in entry.metrics]

    def finest(self) -> list[IndexEntry]:
        """The entries at the finest resolution this segment holds (all, for compressed)."""
        if not self.resolution_ns:
            return self.entries
        low = min(self.resolution_ns)
        return [e for e, r in zip(self.entries, self.resolution_ns, strict=True) if r == low]

    def resolution(self, entry: IndexEntry) -> int:
        """The resolution of an entry: 0 for full resolution."""
        if not self.resolution_ns:
            return 0
        for e, r in zip(self.entries, self.resolution_ns, strict=True):
            if e.seq == entry.seq and e.checksum == entry.checksum:
                return r
        return 0

    def covers(self, base: int) -> bool:
        """Whether the keyframe group ``base`` is one this segment supersedes."""
        return any(b == base for b, _ in self.groups)

    @classmethod
    def build(
        cls,
        *,
        host: str,
        tier: Literal["compressed", "archive"],
        key: str,
        object_bytes: int,
        groups: Sequence[tuple[int, int]],
        source_snapshots: int,
        source_samples: int,
        created_ns: int,
        rows: Sequence[tuple[ProfileSnapshot, int, int]],
        window: tuple[int, int],
    ) -> TierSegment:
        """A segment from ``(snapshot, stored bytes, resolution_ns)`` rows, in seq order."""
        names: dict[str, int] = {}
        sets: dict[tuple[int, ...], int] = {}
        fps: dict[str, int] = {}
        recs = []
        for snap, stored, resolution in rows:
            ids = tuple(names.setdefault(n, len(names)) for n in _source_names(snap))
            recs.append(
                (
                    snap.seq,
                    snap.window_start,
                    snap.window_end,
                    fps.setdefault(snap.fingerprint, len(fps)),
                    sets.setdefault(ids, len(sets)),
                    stored,
                    snap.raw_bytes,
                    snap.sample_count,
                    snap.checksum,
                    resolution,
                )
            )
        cols = {k: [r[i] for r in recs] for i, k in enumerate(_COLUMNS)}
        if tier == "compressed":
            cols["resolution_ns"] = []
        return cls(
            host=host,
            tier=tier,
            first_seq=groups[0][0],
            last_seq=groups[-1][1],
            start_ns=window[0],
            end_ns=window[1],
            key=key,
            object_bytes=object_bytes,
            groups=list(groups),
            source_snapshots=source_snapshots,
            source_samples=source_samples,
            created_ns=created_ns,
            names=list(names),
            metric_sets=[list(s) for s in sets],
            fingerprints=list(fps),
            **cols,
        )

    def to_bytes(self) -> bytes:
        """Canonical JSON with a ``crc32c`` field over everything else."""
        return dump_checked(self)

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str | None = None) -> TierSegment:
        """Parse and check a tier segment. Raises ``CorruptError`` subclasses naming the key."""
        seg = load_checked(cls, data, what="tier segment", version=1, key=key)
        n = len(seg.seq)
        columns = (
            seg.window_start,
            seg.window_end,
            seg.fingerprint,
            seg.metric_set,
            seg.stored_bytes,
            seg.raw_bytes,
            seg.samples,
            seg.checksum,
        )
        if any(len(c) != n for c in columns) or len(seg.resolution_ns) not in (0, n):
            raise CorruptError(f"tier segment at {key}: columns differ in length", key=key)
        if any(not 0 <= i < len(seg.fingerprints) for i in seg.fingerprint) or any(
            not 0 <= i < len(seg.metric_sets) for i in seg.metric_set
        ):
            raise CorruptError(f"tier segment at {key}: id out of range", key=key)
        if any(not 0 <= i < len(seg.names) for s in seg.metric_sets for i in s):
            raise CorruptError(f"tier segment at {key}: metric id out of range", key=key)
        return seg


def _source_names(snap: ProfileSnapshot) -> list[str]:
    """Metric names as a query sees them: an archive ``cpu.util:min`` counts as ``cpu.util``."""
    if META_TIER not in snap.metadata:
        return [m.name for m in snap.metrics]
    seen: dict[str, None] = {}
    for m in snap.metrics:
        seen.setdefault(m.name.rpartition(":")[0] or m.name, None)
    return list(seen)
