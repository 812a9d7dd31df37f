"""Marks: what the compactor will delete (deletion marks) and what repair could not decide
(conflict records). Both are checked JSON under ``marks/deletions/{host}/``
(``snapcloud.layout``), which readers list before the index.

A *retire* mark (``marks/deletions/{host}/{tier}-{first}-{last}.json``) names one
tier item (a raw keyframe group, a compressed or an archive object) that a higher
tier supersedes or that has expired. Readers stop using the item as soon as the
mark exists (they see it in a listing); the compactor deletes its index, then its
data objects, then the mark, once ``delete_after_ns`` has passed. An *orphan*
mark lists objects no index names; readers ignore it, and each key is checked
again before it is deleted.

A *conflict record* (``marks/deletions/{host}/conflict-{seq}.json``) names the
unindexed objects that claim one seq when nothing tells which one was
acknowledged (``verify --repair``, docs/architecture.md D24): the compactor never
deletes a key it names, and a writer never appends at or below its seq.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from snapcloud._checked_json import dump_checked, load_checked

__all__ = ["ConflictRecord", "DeletionMark"]


class DeletionMark(BaseModel):
    """One deletion mark: the keys to delete and the earliest time to delete them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    host: str
    tier: Literal["raw", "compressed", "archive", "orphans"]
    first_seq: int = Field(ge=0)
    last_seq: int = Field(ge=0)
    reason: Literal["superseded", "expired", "orphan"]
    created_ns: int
    delete_after_ns: int
    superseded_by: str | None = None
    index_keys: tuple[str, ...] = ()
    data_keys: tuple[str, ...] = ()

    def due(self, now_ns: int) -> bool:
        """Whether the delay has passed."""
        return now_ns >= self.delete_after_ns

    def to_bytes(self) -> bytes:
        """Canonical JSON with a ``crc32c`` field over everything else."""
        return dump_checked(self)

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str | None = None) -> DeletionMark:
        """Parse and check a mark. Raises ``CorruptError`` subclasses naming the key."""
        return load_checked(cls, data, what="deletion mark", version=1, key=key)


class ConflictRecord(BaseModel):
    """Several objects claim ``seq`` and nothing tells which one was acknowledged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    host: str
    seq: int = Field(ge=0)
    keys: tuple[str, ...]

    def to_bytes(self) -> bytes:
        """Canonical JSON with a ``crc32c`` field over everything else."""
        return dump_checked(self)

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str | None = None) -> ConflictRecord:
        """Parse and check a record. Raises ``CorruptError`` subclasses naming the key."""
        return load_checked(cls, data, what="conflict record", version=1, key=key)
