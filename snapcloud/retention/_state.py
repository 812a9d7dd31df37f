"""What the compactor sees of one host: marks, raw groups, tier items, data objects, who serves.

Loaded in the order readers rely on (marks, raw index, tier indexes), then the
data prefixes (for sizes and for finding orphans).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from snapcloud.backends import ObjectStore
from snapcloud.coordination import ConflictRecord, DeletionMark
from snapcloud.errors import CorruptError, ObjectNotFound
from snapcloud.index import IndexSegment
from snapcloud.layout import (
    TIERS,
    RangeHint,
    Tier,
    TierItem,
    conflict_seq,
    host_marks_prefix,
    parse_mark_key,
    parse_range_hint,
    parse_segment_name,
    parse_tier_index_key,
    segment_key,
    segment_prefix,
    tier_data_key,
    tier_data_prefix,
    tier_index_prefix,
)
from snapcloud.store import TierView

__all__ = ["GroupInfo", "HostState", "load_state"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupInfo:
    """One served stretch of seqs: a raw keyframe group, a compressed or an archive item."""

    tier: Tier
    first: int
    last: int
    start_ns: int
    end_ns: int
    sealed: bool
    item: TierItem | None = None

    @property
    def day(self) -> int:
        """The UTC day (days since the epoch) the group starts in: archive batches by it."""
        return self.start_ns // (86_400 * 10**9)

    @property
    def label(self) -> str:
        """``tier first-last``, for reports."""
        return f"{self.tier} {self.first}-{self.last}"


@dataclass
class HostState:
    """Everything one compactor run knows about one host."""

    host: str
    marks: dict[str, DeletionMark] = field(default_factory=dict)
    bad_marks: list[str] = field(default_factory=list)
    raw_bases: list[int] = field(default_factory=list)
    raw: dict[int, IndexSegment] = field(default_factory=dict)
    raw_etags: dict[int, str] = field(default_factory=dict)  # of the segment bytes read
    hints: dict[str, RangeHint] = field(default_factory=dict)  # range hints listed, by key
    kept: set[str] = field(default_factory=set)  # keys conflict records keep
    bad_conflicts: list[str] = field(default_factory=list)  # unreadable conflict records
    view: TierView = field(default_factory=lambda: TierView(frozenset(), (), ()))
    sizes: dict[str, int] = field(default_factory=dict)
    data_keys: list[str] = field(default_factory=list)

    @property
    def next_seq(self) -> int:
        """The seq the writer appends next (raw objects at or past it may be in flight)."""
        if self.raw_bases and self.raw_bases[-1] in self.raw:
            entries = self.raw[self.raw_bases[-1]].entries
            return entries[-1].seq + 1 if entries else self.raw_bases[-1]
        top = self.view.max_seq()
        return 0 if top is None else top + 1

    def served(self) -> list[GroupInfo]:
        """Who serves each stretch of seqs now, in seq order."""
        out = []
        last_base = self.raw_bases[-1] if self.raw_bases else None
        for s in self.view.serving(self.raw_bases):
            if s.item is not None:
                item = s.item
                out.append(
                    GroupInfo(s.tier, item.first, item.last, item.start_ns, item.end_ns, True, item)
                )
                continue
            seg = self.raw.get(s.first)
            if seg is None or not seg.entries:
                continue
            out.append(
                GroupInfo(
                    "raw",
                    seg.base,
                    seg.entries[-1].seq,
                    min(e.window_start for e in seg.entries),
                    max(e.window_end for e in seg.entries),
                    sealed=s.first != last_base,
                )
            )
        return out

    def keys_of(self, info: GroupInfo) -> tuple[list[str], list[str]]:
        """``(index keys, data keys)`` of a served or superseded item."""
        if info.tier == "raw":
            seg = self.raw[info.first]
            return [segment_key(self.host, info.first)], [e.key for e in seg.entries]
        assert info.item is not None
        item = info.item
        return [item.key], [
            tier_data_key(item.tier, self.host, item.first, item.last, item.start_ns)
        ]

    def size(self, key: str) -> int:
        """The listed size of a key (0 when it was not listed)."""
        return self.sizes.get(key, 0)


def load_state(objects: ObjectStore, host: str) -> HostState:
    """Read a host's marks, raw segments (unmarked ones), tier listings and data listings."""
    st = HostState(host)
    for info in objects.list(host_marks_prefix(host)):
        st.sizes[info.key] = info.size
        if conflict_seq(info.key, host) is not None:
            _load_conflict(objects, info.key, st)
            continue
        try:
            st.marks[info.key] = DeletionMark.from_bytes(objects.get(info.key).data, key=info.key)
        except ObjectNotFound:
            continue
        except CorruptError as exc:
            log.error("skipping unreadable deletion mark %s: %s", info.key, exc)
            st.bad_marks.append(info.key)
    marked = set()
    for key in st.marks:
        parsed = parse_mark_key(key, host)
        if parsed is not None:
            marked.add((parsed[0], parsed[1]))
    prefix = segment_prefix(host)
    for info in objects.list(prefix):
        name = info.key[len(prefix) :]
        if (group := parse_segment_name(name)) is not None:
            st.sizes[info.key] = info.size
            st.raw_bases.append(group)
        elif (hint := parse_range_hint(name)) is not None:
            st.hints[info.key] = hint
    st.raw_bases.sort()
    for base in st.raw_bases:
        if ("raw", base) in marked and base != st.raw_bases[-1]:
            continue  # its keys are in its mark; no need to read it
        key = segment_key(host, base)
        try:
            got = objects.get(key)
        except ObjectNotFound:
            continue
        st.raw[base] = IndexSegment.from_bytes(got.data, key=key)
        st.raw_etags[base] = got.etag.strip('"')
    items: dict[str, list[TierItem]] = {"compressed": [], "archive": []}
    for tier in TIERS[1:]:
        for info in objects.list(tier_index_prefix(tier, host)):
            item = parse_tier_index_key(info.key, host, tier)
            if item is not None:
                st.sizes[info.key] = info.size
                items[tier].append(item)
    st.view = TierView(
        frozenset(marked),
        tuple(sorted(items["compressed"], key=lambda i: i.first)),
        tuple(sorted(items["archive"], key=lambda i: i.first)),
    )
    for tier in TIERS:
        for info in objects.list(tier_data_prefix(tier, host)):
            st.sizes[info.key] = info.size
            st.data_keys.append(info.key)
    return st


def _load_conflict(objects: ObjectStore, key: str, st: HostState) -> None:
    """A conflict record (``verify --repair`` could not tell which object holds its seq):
    the keys it names are never garbage; an unreadable one keeps every raw object."""
    try:
        st.kept.update(ConflictRecord.from_bytes(objects.get(key).data, key=key).keys)
    except ObjectNotFound:
        return
    except CorruptError as exc:
        log.error("unreadable conflict record %s: %s", key, exc)
        st.bad_conflicts.append(key)
