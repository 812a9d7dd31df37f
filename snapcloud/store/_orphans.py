"""Which data objects no index names are garbage: the one rule verify, repair and the
compactor share (docs/architecture.md, D24).

An object no index names is either a *lost entry* or *garbage*:

- garbage: it provably lost a race or is a copy of data held elsewhere. A raw
  object is garbage when an index (a raw segment, or a retire mark's keys) names
  its seq with another key (a second writer's append that lost the segment's
  condition), or when a compressed or archive item holds its seq (the raw copy of
  a compacted group, or data the policy downsampled), and a delta is garbage when
  no keyframe object of its base seq is left to decode it (a lifecycle rule or an
  operator deleted it: the delta's data is gone with it). A tier object is garbage when
  every seq it holds is served by raw groups or other tier items (a compaction
  interrupted before its index);
- a lost entry: anything else. It may be acknowledged data whose index entry was
  lost (a rolled-back segment, a deleted one), so it is reported as a problem, the
  compactor never deletes it, and ``verify --repair`` indexes it again.

An append that died between its object and its index also leaves a lost entry (at
the stream's tail); a rerun of the same append reuses the object (its key names
its content), and repair indexing it is harmless: writers find it by content.

When several unindexed objects claim one seq and nothing tells which one was
acknowledged, ``verify --repair`` indexes none and writes a *conflict record*
(``marks/deletions/{host}/conflict-{seq}.json``, checked JSON naming the
candidates: ``snapcloud.coordination.ConflictRecord``). The compactor never
deletes a key a record names, a writer never appends at or below a recorded seq
(``next_seq`` skips past it, and starts a new keyframe group), and ``verify``
reports it until at most one candidate is left: deleting the wrong ones by hand
resolves it, and the next repair indexes the one left and removes the record.
Readers ignore records (they are no retire marks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from snapcloud.layout import parse_data_key

__all__ = ["SeqIndex"]


@dataclass
class SeqIndex:
    """What the indexes of one host say about seqs: who names each raw seq, and which
    seq ranges raw groups and tier items serve."""

    keys: dict[int, set[str]] = field(default_factory=dict)  # seq -> raw data keys named
    tier_spans: list[tuple[int, int]] = field(default_factory=list)  # compressed/archive
    raw_spans: list[tuple[int, int]] = field(default_factory=list)  # raw groups
    keyframes: set[int] = field(default_factory=set)  # seqs with a keyframe object listed
    kept: set[str] = field(default_factory=set)  # keys a conflict record names
    keep_all: bool = False  # an unreadable conflict record: no raw object is garbage

    def list_objects(self, keys: Iterable[str]) -> None:
        """Record the raw data keys a listing showed (which seqs still have a keyframe)."""
        for key in keys:
            pk = parse_data_key(key)
            if pk is not None and pk.is_keyframe:
                self.keyframes.add(pk.seq)

    def name(self, keys: Iterable[str]) -> None:
        """Record raw data keys an index or a retire mark names."""
        for key in keys:
            pk = parse_data_key(key)
            if pk is not None:
                self.keys.setdefault(pk.seq, set()).add(key)

    def raw_garbage(self, key: str) -> bool:
        """Whether an unindexed raw object provably lost a race, is a copy of data a tier
        holds, or is a delta without a keyframe (else it is a lost entry, or not a data
        key at all: False). ``list_objects`` must have seen the host's raw listing."""
        pk = parse_data_key(key)
        if pk is None or key in self.kept or self.keep_all:
            return False
        named = self.keys.get(pk.seq, set())
        return (
            bool(named - {key})
            or _covered(self.tier_spans, pk.seq, pk.seq)
            or (not pk.is_keyframe and pk.base not in self.keyframes)
        )

    def tier_garbage(self, first: int, last: int) -> bool:
        """Whether every seq of an unindexed tier object is served by something else."""
        return _covered([*self.raw_spans, *self.tier_spans], first, last)


def _covered(spans: list[tuple[int, int]], first: int, last: int) -> bool:
    """Whether the union of inclusive ``spans`` covers every seq in ``first..last``."""
    at = first
    for lo, hi in sorted(spans):
        if lo > at:
            break
        at = max(at, hi + 1)
        if at > last:
            return True
    return at > last
