"""Retention tiers, read side: which tier serves each keyframe group, and reading it.

The compactor (``snapcloud.retention``) moves whole keyframe groups from ``raw``
to ``compressed`` (lossless, one object per group) to ``archive`` (downsampled,
one object per run of groups of one UTC day) and finally away; the formats are
in ``snapcloud.codec`` (``_compressed``, ``_archive``), their index segments in
``snapcloud.index`` (``TierSegment``), their keys in ``snapcloud.layout``.

Who serves a group (the supersession rule): items under a retire mark are
invisible; of the rest, an archive item covering the group's base wins over a
compressed item of that base, which wins over the raw group. A higher tier's
index is written before any mark on the lower tier, and a reader lists marks
before the tier indexes, so a group is always served by exactly one tier: a
reader sees either the old state or the new, never both and never neither.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from snapcloud.backends import ObjectStore
from snapcloud.codec import decode_archive, decode_compressed
from snapcloud.errors import ChecksumMismatch, ObjectNotFound
from snapcloud.index import IndexEntry, TierSegment
from snapcloud.layout import (
    Tier,
    TierItem,
    host_marks_prefix,
    parse_mark_key,
    parse_tier_data_key,
    parse_tier_index_key,
    tier_index_prefix,
)
from snapcloud.models import ProfileSnapshot, SnapshotConfig, SnapshotQuery
from snapcloud.store._read import fetch_entry

__all__ = ["Served", "TierReader", "TierView"]


# --------------------------------------------------------------------------- view


@dataclass(frozen=True)
class Served:
    """What serves reads of one stretch of seqs: a raw group or a tier item."""

    tier: Tier
    first: int
    item: TierItem | None = None

    @property
    def last(self) -> int | None:
        """The last seq covered; ``None`` for a raw group (it runs to the next group)."""
        return None if self.item is None else self.item.last


@dataclass(frozen=True)
class TierView:
    """The tier indexes and retire marks of one host, from three listings."""

    marked: frozenset[tuple[Tier, int]]
    compressed: tuple[TierItem, ...]
    archive: tuple[TierItem, ...]

    @classmethod
    def load(cls, objects: ObjectStore, host: str) -> TierView:
        """List marks first, then compressed, then archive indexes (the order readers rely on)."""
        marks = [info.key for info in objects.list(host_marks_prefix(host))]
        tiers: tuple[Tier, ...] = ("compressed", "archive")
        index = [info.key for tier in tiers for info in objects.list(tier_index_prefix(tier, host))]
        return cls.from_keys(host, marks, index)

    @classmethod
    def from_keys(cls, host: str, mark_keys: Sequence[str], index_keys: Sequence[str]) -> TierView:
        """The view from listed keys: marks (listed first) and index keys of any tier
        (keys that are not compressed or archive index segments are ignored)."""
        marked = set()
        for key in mark_keys:
            parsed = parse_mark_key(key, host)
            if parsed is not None:
                marked.add((parsed[0], parsed[1]))
        items: dict[Tier, list[TierItem]] = {"compressed": [], "archive": []}
        for key in index_keys:
            for tier in ("compressed", "archive"):
                item = parse_tier_index_key(key, host, tier)
                if item is not None:
                    items[tier].append(item)
        return cls(
            frozenset(marked),
            tuple(sorted(items["compressed"], key=lambda i: i.first)),
            tuple(sorted(items["archive"], key=lambda i: i.first)),
        )

    def serving(self, raw_bases: Sequence[int]) -> list[Served]:
        """Who serves each group, in seq order (the supersession rule in the module docstring)."""
        archive = [a for a in self.archive if ("archive", a.first) not in self.marked]
        firsts = [a.first for a in archive]

        def archived(base: int) -> bool:
            pos = bisect.bisect_right(firsts, base) - 1
            return pos >= 0 and archive[pos].first <= base <= archive[pos].last

        compressed = [
            c
            for c in self.compressed
            if ("compressed", c.first) not in self.marked and not archived(c.first)
        ]
        taken = {c.first for c in compressed}
        out = [Served("archive", a.first, a) for a in archive]
        out += [Served("compressed", c.first, c) for c in compressed]
        out += [
            Served("raw", b)
            for b in raw_bases
            if ("raw", b) not in self.marked and b not in taken and not archived(b)
        ]
        out.sort(key=lambda s: s.first)
        return out

    def max_seq(self) -> int | None:
        """The highest seq any tier item covers (marked ones included)."""
        lasts = [i.last for i in (*self.compressed, *self.archive)]
        return max(lasts) if lasts else None


# --------------------------------------------------------------------------- reader

RawEntries = Callable[[int], list[tuple[list[str], IndexEntry]]]


class TierReader:
    """Reads a host stream's compressed and archive tiers; caches what never changes.

    Tier segments are immutable once written (cached for good); the view (three
    listings) is cached until ``refresh``; the last two decoded tier objects are kept.
    """

    def __init__(
        self,
        objects: ObjectStore,
        host: str,
        config: SnapshotConfig,
        loader: Callable[[], TierView] | None = None,
    ) -> None:
        self.objects = objects
        self.host = host
        self.config = config
        # ``loader`` lets the stream list marks and every tier's index in two requests,
        # sharing the listing with its raw groups; the default lists three prefixes.
        self._loader = loader or (lambda: TierView.load(objects, host))
        self._view: TierView | None = None
        self._segments: dict[str, TierSegment] = {}
        self.segment_reads = 0  # tier segments read from storage (for query figures)
        self._decoded: OrderedDict[str, dict[tuple[int, int], ProfileSnapshot]] = OrderedDict()
        self._lock = threading.RLock()

    def refresh(self) -> None:
        """Forget the view so the next read lists the tiers again."""
        with self._lock:
            self._view = None

    def view(self) -> TierView:
        """The current view (loaded on first use)."""
        with self._lock:
            if self._view is None:
                self._view = self._loader()
            return self._view

    def next_seq(self) -> int:
        """The seq after everything the tiers hold (0 when they hold nothing)."""
        top = self.view().max_seq()
        return 0 if top is None else top + 1

    def segment(self, item: TierItem) -> TierSegment:
        """The segment an item names. Raises ``ObjectNotFound`` or a ``CorruptError``."""
        with self._lock:
            seg = self._segments.get(item.key)
        if seg is None:
            self.segment_reads += 1
            seg = TierSegment.from_bytes(self.objects.get(item.key).data, key=item.key)
            if seg.host != self.host or seg.first_seq != item.first or seg.last_seq != item.last:
                raise ChecksumMismatch(f"tier segment {item.key} names another item", key=item.key)
            with self._lock:
                self._segments[item.key] = seg
        return seg

    def serving_entries(
        self,
        raw_bases: Sequence[int],
        raw_entries: RawEntries,
        query: SnapshotQuery | None,
    ) -> list[tuple[list[str], IndexEntry]]:
        """``(metric names, entry)`` of every entry serving reads, in seq order.

        Tier items outside the query's time range are skipped by their key alone;
        archive items give their finest resolution.
        """
        out: list[tuple[list[str], IndexEntry]] = []
        for served in self.view().serving(raw_bases):
            if served.item is None:
                out.extend(raw_entries(served.first))
                continue
            item = served.item
            if query is not None and not query.overlaps(item.start_ns, item.end_ns):
                continue
            seg = self.segment(item)
            out.extend((seg.metric_names(e), e) for e in seg.finest())
        return out

    def segments(self, raw_bases: Sequence[int]) -> list[TierSegment]:
        """The compressed and archive segments serving reads, in seq order."""
        return [self.segment(s.item) for s in self.view().serving(raw_bases) if s.item]

    def locate(self, seq: int, raw_bases: Sequence[int]) -> Served | None:
        """What serves ``seq``, or ``None``."""
        served = self.view().serving(raw_bases)
        pos = bisect.bisect_right([s.first for s in served], seq) - 1
        if pos < 0:
            return None
        found = served[pos]
        last = found.last
        return found if last is None or seq <= last else None

    def compressed_entry(self, served: Served, seq: int) -> IndexEntry | None:
        """The compressed-tier entry of ``seq`` in a served compressed item."""
        if served.item is None or served.tier != "compressed":
            return None
        for e in self.segment(served.item).entries:
            if e.seq == seq:
                return e
        return None

    def _item_of(self, key: str) -> TierItem:
        parsed = parse_tier_data_key(key)
        if parsed is not None:
            tier, _, first, _ = parsed
            view = self.view()
            for item in view.compressed if tier == "compressed" else view.archive:
                if item.first == first:
                    return item
        raise ObjectNotFound(f"no tier index names {key}", key=key, host=self.host)

    def read(self, entry: IndexEntry, data: bytes | None = None) -> ProfileSnapshot:
        """The snapshot a compressed or archive entry names (archive: an aggregate snapshot).

        A compressed object's frame is decoded once for all the snapshots it holds.
        ``data``: the object's bytes, when the caller has read them already (a fleet
        query reads on a pool and decodes in its own thread).
        Raises ``ObjectNotFound`` or a ``CorruptError`` subclass.
        """
        ident = (entry.seq, entry.checksum)
        with self._lock:
            loaded = self._decoded.get(entry.key)
            if loaded is not None:
                self._decoded.move_to_end(entry.key)
                found = loaded.get(ident)
                if found is not None:
                    return found
        item = self._item_of(entry.key)
        seg = self.segment(item)
        if data is None:
            data = fetch_entry(self.objects, self.host, entry, f"tier index {item.key}")
        limit = self.config.max_decoded_bytes
        verify = self.config.verify_checksums
        if item.tier == "compressed":
            snaps = list(
                decode_compressed(
                    data, key=entry.key, max_decoded=limit, verify=verify, seqs=[entry.seq]
                ).values()
            )
        else:
            pick = [
                i
                for i, (s, c) in enumerate(zip(seg.seq, seg.checksum, strict=True))
                if s == entry.seq and c == entry.checksum
            ]
            frames = decode_archive(
                data, key=entry.key, max_decoded=limit, verify=verify, only=pick
            )
            snaps = [snap for _, snap in frames]
        got = {(s.seq, s.checksum): s for s in snaps}
        found = got.get(ident)
        if found is None or found.host != self.host:
            raise ChecksumMismatch(
                f"tier object {entry.key} does not hold what its index says", key=entry.key
            )
        with self._lock:
            self._decoded.setdefault(entry.key, {}).update(got)
            self._decoded.move_to_end(entry.key)
            while len(self._decoded) > 2:
                self._decoded.popitem(last=False)
        return found
