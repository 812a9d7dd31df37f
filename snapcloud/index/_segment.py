"""Index segments: one JSON object per keyframe group of a host stream's raw tier.

A segment (``index/{host}/raw/{base}.json``, ``snapcloud.layout``) is rewritten as
its group grows (one PUT per append, whatever the store's size) and never changes
once the next group has started. It carries a CRC32C over its canonical JSON, so
a changed byte is found on read. Its entries may only name their own group's
objects under their own host's prefix.

A sealed group's time range is also in the key of an empty *range hint* beside
it, as of the segment's ETag: it arrives with the listing a reader makes anyway,
so a query of a time range skips the segments of groups outside it without
reading them. A reader trusts a hint only while the segment's listed ETag equals
the hint's: a segment rewritten after its hint (or a hint left by a deleted
segment) is read as if there were no hint. The compactor writes hints
(docs/architecture.md, D18).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from snapcloud._checked_json import dump_checked, load_checked
from snapcloud.errors import CorruptError
from snapcloud.layout import parse_data_key

__all__ = ["SEGMENT_VERSION", "IndexEntry", "IndexSegment"]

SEGMENT_VERSION = 1


class IndexEntry(BaseModel):
    """One stored snapshot: where it is, what it holds, and how big it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=0)
    kind: Literal["k", "d"]
    base: int = Field(ge=0, description="the keyframe's seq (a keyframe names itself)")
    window_start: int
    window_end: int
    fingerprint: str
    metrics: tuple[int, ...] = Field(description="ids into the segment's name table")
    stored_bytes: int = Field(ge=0)
    raw_bytes: int = Field(ge=0)
    samples: int = Field(ge=0)
    checksum: int = Field(ge=0, lt=2**32, description="content CRC32C of the snapshot")
    key: str


class IndexSegment(BaseModel):
    """The index of one keyframe group of one host stream."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    host: str
    tier: Literal["raw"] = "raw"
    base: int = Field(ge=0)
    names: list[str] = Field(default_factory=list)
    entries: list[IndexEntry] = Field(default_factory=list)

    def add(self, entry: IndexEntry) -> None:
        """Append an entry (its ``metrics`` already map into ``names``)."""
        self.entries.append(entry)

    def name_ids(self, names: list[str]) -> tuple[int, ...]:
        """Ids for ``names`` in the name table, adding the new ones."""
        table = {n: i for i, n in enumerate(self.names)}
        out = []
        for n in names:
            if n not in table:
                table[n] = len(self.names)
                self.names.append(n)
            out.append(table[n])
        return tuple(out)

    def metric_names(self, entry: IndexEntry) -> list[str]:
        return [self.names[i] for i in entry.metrics]

    def to_bytes(self) -> bytes:
        """Canonical JSON with a ``crc32c`` field over everything else."""
        return dump_checked(self)

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str | None = None) -> IndexSegment:
        """Parse and check a segment. Raises ``CorruptError`` subclasses naming the key."""
        seg = load_checked(cls, data, what="index segment", version=SEGMENT_VERSION, key=key)
        for e in seg.entries:
            if e.metrics and (min(e.metrics) < 0 or max(e.metrics) >= len(seg.names)):
                raise CorruptError(f"index segment at {key}: metric id out of range", key=key)
            # An entry may only name its own group's object under its own host's prefix:
            # the compactor deletes the keys an index names, so a foreign key here would
            # let one host's index retire another host's data.
            named = parse_data_key(e.key)
            if (
                named is None
                or named.host != seg.host
                or (named.seq, named.base) != (e.seq, e.base)
                or named.checksum not in (None, e.checksum)
                or e.base != seg.base
                or e.kind != ("k" if e.seq == e.base else "d")
            ):
                raise CorruptError(
                    f"index segment at {key}: entry {e.seq} names another group's object",
                    key=key,
                )
        return seg
