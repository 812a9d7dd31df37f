"""One host stream on an object store: append, get, query, stats.

Write path (two requests per append, whatever the store's size): the snapshot
object first, then its keyframe group's index segment with a conditional put
(if-absent for a new group, if-match on the segment's ETag otherwise). Data
keys name the snapshot's content checksum and are written if-absent, so no data
object is ever replaced. An object whose segment write never happened is an
orphan: invisible to readers, collected by the compactor, indexed again by
``verify --repair`` when the index was lost.
A conditional put that fails means another writer touched the stream: the
append raises ``ConflictError`` and nothing already stored changes.

Read path: ``get(seq)`` reads at most two objects (the keyframe, cached, and
the delta). ``query`` walks the index, streams snapshots, and refuses with
``MemoryExceeded`` rather than truncating.

Retention tiers: reads (``entries``, ``entry``, ``get``, ``plan``, ``query``,
``stats``) also see the compressed and archive tiers the compactor writes and
skip what a deletion mark retires (``_tiers``: which tier serves each group).
``segments`` and the write path stay on the raw tier.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

from snapcloud import codec
from snapcloud.backends import ObjectInfo, ObjectStore
from snapcloud.errors import (
    ChecksumMismatch,
    MemoryExceeded,
    ObjectNotFound,
    PreconditionFailed,
    SnapshotNotFound,
    ValidationError,
)
from snapcloud.errors import ConflictError as _Conflict
from snapcloud.index import IndexEntry, IndexSegment, TierSegment
from snapcloud.layout import (
    catalog_key,
    conflict_seq,
    data_key,
    host_index_prefix,
    host_marks_prefix,
    parse_range_hint,
    parse_segment_name,
    range_hint_key,
    segment_key,
    segment_prefix,
    tier_of_key,
)
from snapcloud.models import ProfileSnapshot, SnapshotConfig, SnapshotQuery, validate_host
from snapcloud.store._read import decode_entry, fetch_entry, trim
from snapcloud.store._tiers import TierReader, TierView

__all__ = ["HostStream", "StreamStats"]

_KEYFRAME_CACHE = 8


@dataclass
class StreamStats:
    """Sizes and counts of one host stream, from its index (real stored bytes).

    ``snapshots`` counts every tier; ``tiers`` splits it by tier (raw, compressed,
    archive); ``keyframes`` and ``deltas`` are raw objects (a compressed-tier snapshot is
    neither: its group is one object). ``stored_bytes`` is the data objects that serve
    reads (data the compactor retired but has not deleted yet is not counted);
    ``index_bytes`` is every object under ``index/{host}/`` (segments, tier tables, range
    hints; retired ones until deleted) and ``catalog_bytes`` the host's catalog entry;
    ``total_bytes`` adds the three.
    """

    host: str
    snapshots: int = 0
    keyframes: int = 0
    deltas: int = 0
    samples: int = 0
    stored_bytes: int = 0
    raw_bytes: int = 0
    segments: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    fingerprints: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    index_bytes: int = 0
    catalog_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """Everything the host stores: data, index and catalog objects."""
        return self.stored_bytes + self.index_bytes + self.catalog_bytes

    @property
    def ratio(self) -> float:
        """Stored bytes over raw bytes (16 B/sample)."""
        return self.stored_bytes / self.raw_bytes if self.raw_bytes else 0.0

    @property
    def bytes_per_sample(self) -> float:
        return self.stored_bytes / self.samples if self.samples else 0.0


class HostStream:
    """The snapshots of one host, as keyframe and delta objects plus index segments.

    Open it on any ``ObjectStore``; a new process reopening the same store sees
    everything an earlier one appended. Thread-safe for one writer and many readers.
    """

    def __init__(
        self,
        objects: ObjectStore,
        host: str,
        config: SnapshotConfig | None = None,
    ) -> None:
        self.objects = objects
        self.host = validate_host(host)
        self.config = config or SnapshotConfig()
        self._lock = threading.RLock()
        self._segments: dict[int, IndexSegment] = {}
        self._etags: dict[int, str] = {}
        self._keyframes: OrderedDict[int, ProfileSnapshot] = OrderedDict()
        self._bases: list[int] | None = None
        # group -> (start, end) of its windows, from range hints the listing vouches for
        self._ranges: dict[int, tuple[int, int]] = {}
        self._conflict_top: int | None = None  # highest seq under a conflict record
        self._raw_segment_reads = 0
        # retention tiers, read side; its view comes from the same listing as the raw groups
        self._tiers = TierReader(objects, self.host, self.config, loader=self._list_tiers)
        self._tier_view: TierView | None = None

    def __repr__(self) -> str:
        return f"HostStream(host={self.host!r}, objects={self.objects.description!r})"

    # ------------------------------------------------------------------ index access

    def _group_bases(self) -> list[int]:
        """Keyframe seqs of every group (cached; appends keep it current)."""
        if self._bases is None:
            self._list_index()
        assert self._bases is not None
        return self._bases

    def group_bases(self) -> list[int]:
        """The keyframe seq of every raw group, oldest first, as last listed (appends keep
        it current; ``relist`` lists again). ``segments`` reads their index segments."""
        return list(self._group_bases())

    def _list_index(self) -> None:
        """Two listings: the host's deletion marks, then everything under ``index/{host}/``
        (raw segments and the compressed and archive tier indexes at once).

        Marks are listed first: the compactor writes a higher tier's index before the
        mark that retires the lower tier, so a reader that sees a mark sees its successor.
        """
        marks = [info.key for info in self.objects.list(host_marks_prefix(self.host))]
        index = list(self.objects.list(host_index_prefix(self.host)))
        self.seed_listing(marks, index)

    def seed_listing(self, mark_keys: list[str], index: list[ObjectInfo]) -> None:
        """Take the stream's index from a listing made by someone else, in the order of
        ``_list_index``: its deletion marks listed first, then ``index/{host}/``.

        A fleet query lists ``marks/deletions/`` and ``index/`` once for every host
        instead of twice per host, and hands each stream its share.

        A range hint counts only when the listing shows its segment with the hint's
        ETag (the segment has not changed since the hint was written).
        """
        raw = segment_prefix(self.host)
        etags: dict[int, str] = {}
        hints = []
        others: list[str] = []
        for info in index:
            if info.key.startswith(raw):
                name = info.key[len(raw) :]
                if (base := parse_segment_name(name)) is not None:
                    etags[base] = info.etag.strip('"')
                elif (hint := parse_range_hint(name)) is not None:
                    hints.append(hint)
            else:
                others.append(info.key)
        ranges: dict[int, tuple[int, int]] = {}
        for h in hints:
            if etags.get(h.base) == h.etag:  # two hints of one version: cover both
                start, end = ranges.get(h.base, (h.start_ns, h.end_ns))
                ranges[h.base] = (min(start, h.start_ns), max(end, h.end_ns))
        conflicts = [c for k in mark_keys if (c := conflict_seq(k, self.host)) is not None]
        with self._lock:
            self._bases = sorted(etags)
            self._ranges = ranges
            self._conflict_top = max(conflicts, default=None)
            self._tier_view = TierView.from_keys(self.host, mark_keys, others)

    def _list_tiers(self) -> TierView:
        """The tier view for ``TierReader``: from the listing the raw groups came from,
        or a fresh one when the groups were known without it (a stream that only appended)."""
        with self._lock:
            if self._tier_view is None:
                self._list_index()
            view, self._tier_view = self._tier_view, None  # the reader caches it from here
            assert view is not None
            return view

    def _segment(self, base: int) -> IndexSegment:
        seg = self._segments.get(base)
        if seg is None:
            key = segment_key(self.host, base)
            self._raw_segment_reads += 1
            got = self.objects.get(key)
            seg = IndexSegment.from_bytes(got.data, key=key)
            if seg.base != base or seg.host != self.host:
                raise ChecksumMismatch(f"index segment at {key} names another group", key=key)
            self._segments[base] = seg
            self._etags[base] = got.etag
        return seg

    def segments(self) -> Iterator[IndexSegment]:
        """Every index segment of the stream, oldest group first."""
        for base in list(self._group_bases()):
            yield self._segment(base)

    @property
    def segment_reads(self) -> int:
        """Index segments (raw and tier) this stream has read from storage."""
        return self._raw_segment_reads + self._tiers.segment_reads

    def serving(self, query: SnapshotQuery | None = None) -> list[tuple[list[str], IndexEntry]]:
        """``(metric names, entry)`` of every entry serving reads (across tiers), in seq
        order; with ``query``, those whose window overlaps its time range (its other
        fields are not applied). Reads only the index segments that range needs: tier
        items and range-hinted raw groups outside it are skipped by their keys.
        Raises ``ObjectNotFound`` or a ``CorruptError`` subclass for an unreadable index."""
        if query is None:
            return self._serving(None)
        return [
            (n, e) for n, e in self._serving(query) if query.overlaps(e.window_start, e.window_end)
        ]

    def range_hint(self, base: int) -> tuple[int, int] | None:
        """``(start, end)`` of group ``base``'s windows as a range hint states it, when the
        listing showed the segment with the hint's ETag; else ``None``."""
        with self._lock:
            self._group_bases()
            return self._ranges.get(base)

    def write_range_hints(self) -> int:
        """Put the range hint (D18) of every sealed raw group whose segment this stream
        holds and that has none; return how many were written.

        The compactor writes them too; an import calls this so that the groups it read
        or sealed are skipped by the next import or query of other times, compactor or
        not. Safe against any writer: a hint names its segment's ETag and counts only
        while the listing shows that version. Raises ``BackendError`` when a put fails.
        """
        written = 0
        with self._lock:
            bases = self._group_bases()
            open_group = bases[-1] if bases else None
            for base, seg in sorted(self._segments.items()):
                etag = self._etags.get(base)
                if base == open_group or base in self._ranges or not seg.entries or not etag:
                    continue
                start = min(e.window_start for e in seg.entries)
                end = max(e.window_end for e in seg.entries)
                key = range_hint_key(self.host, base, start, end, etag)
                if key is None:
                    continue  # a store whose ETags a key cannot carry gets no hints
                try:
                    self.objects.put(key, b"", if_absent=True)
                except PreconditionFailed:
                    pass  # written already (by the compactor, or an earlier import)
                else:
                    written += 1
                self._ranges[base] = (start, end)
        return written

    def _may_overlap(self, base: int, query: SnapshotQuery | None) -> bool:
        """False only when group ``base``'s range hint puts all its windows outside
        ``query``'s time range (then its segment need not be read)."""
        bounds = self._ranges.get(base)
        return query is None or bounds is None or query.overlaps(*bounds)

    def tier_segments(self) -> list[TierSegment]:
        """The compressed and archive index segments serving reads (``segments`` is raw)."""
        with self._lock:
            return self._tiers.segments(self._group_bases())

    def entries(self) -> Iterator[IndexEntry]:
        """Every index entry that serves reads, in seq order, across retention tiers."""
        for _, e in self._serving(None):
            yield e

    def _last_segment(self) -> IndexSegment | None:
        bases = self._group_bases()
        return self._segment(bases[-1]) if bases else None

    @property
    def next_seq(self) -> int:
        """The seq the next append will get: past every seq a conflict record holds
        (objects claim it that ``verify --repair`` could not choose between)."""
        with self._lock:
            last = self._last_segment()
            if last is None:
                seq = self._tiers.next_seq()  # no raw group left: continue after the tiers
            else:
                seq = last.entries[-1].seq + 1 if last.entries else last.base
            top = self._conflict_top
            return seq if top is None else max(seq, top + 1)

    def __len__(self) -> int:
        return self.next_seq

    def entry(self, seq: int) -> IndexEntry:
        """The index entry of ``seq`` in the tier serving it. Raises ``SnapshotNotFound``
        (also for a seq only the archive holds: it is downsampled, query it by time)."""
        return self._lookup(seq, self._tier_entry)

    def _raw_entry(self, seq: int) -> IndexEntry:
        """The raw-tier index entry of ``seq`` (the write path and keyframes use this)."""
        return self._lookup(seq, self._find)

    def _lookup(self, seq: int, find: Callable[[int], IndexEntry | None]) -> IndexEntry:
        with self._lock:
            found = find(seq)
            if found is None and seq >= self.next_seq:
                self.refresh()  # another writer may have appended since we looked
                found = find(seq)
        if found is None:
            raise SnapshotNotFound(
                f"host {self.host!r} has no snapshot {seq}", host=self.host, seq=seq
            )
        return found

    def _tier_entry(self, seq: int) -> IndexEntry | None:
        served = self._tiers.locate(seq, self._group_bases())
        if served is None:
            return None
        if served.tier == "raw":
            return self._find(seq)
        return self._tiers.compressed_entry(served, seq)

    def _find(self, seq: int) -> IndexEntry | None:
        with self._lock:
            bases = self._group_bases()
            pos = bisect.bisect_right(bases, seq) - 1
            if pos >= 0:
                seg = self._segment(bases[pos])
                i = seq - seg.base
                if 0 <= i < len(seg.entries) and seg.entries[i].seq == seq:
                    return seg.entries[i]
                for e in seg.entries:
                    if e.seq == seq:
                        return e
        return None

    # ------------------------------------------------------------------ write

    def append(self, snapshot: ProfileSnapshot) -> IndexEntry:
        """Store ``snapshot`` as the stream's next seq; return its index entry.

        Raises ``ValidationError`` for a snapshot of another host, ``ConflictError``
        when another writer changed the stream, ``BackendError`` when storage fails
        (the append can then be retried: it rewrites the same seq).
        """
        if snapshot.host != self.host:
            raise ValidationError(
                f"snapshot of host {snapshot.host!r} appended to stream {self.host!r}",
                field="host",
            )
        with self._lock:
            seq = self.next_seq
            snap = snapshot.with_seq(seq)
            last = self._last_segment()
            # a seq skipped for a conflict record starts a new group: groups never interleave
            new_group = (
                last is None
                or len(last.entries) >= self.config.keyframe_interval
                or (bool(last.entries) and seq != last.entries[-1].seq + 1)
            )
            keyframe = None if new_group else self._keyframe(last.base)  # type: ignore[union-attr]
            if keyframe is None:
                data = codec.encode_keyframe(snap, level=self.config.zstd_level)
                base = seq
            else:
                data = codec.encode_delta(snap, keyframe, level=self.config.zstd_level)
                base = keyframe.seq
            key = data_key(self.host, seq, base, snap.window_start, snap.checksum)
            landed = self._put_object(key, data, snap)
            if landed is not None:
                return landed
            seg = (
                IndexSegment(host=self.host, base=seq)
                if keyframe is None
                else self._segment(base).model_copy(deep=True)
            )
            entry = IndexEntry(
                seq=seq,
                kind="k" if keyframe is None else "d",
                base=base,
                window_start=snap.window_start,
                window_end=snap.window_end,
                fingerprint=snap.fingerprint,
                metrics=seg.name_ids([m.name for m in snap.metrics]),
                stored_bytes=len(data),
                raw_bytes=snap.raw_bytes,
                samples=snap.sample_count,
                checksum=snap.checksum,
                key=key,
            )
            seg.add(entry)
            self._write_segment(seg, new=keyframe is None)
            if keyframe is None:
                self._remember_keyframe(snap)
            return entry

    def _put_object(self, key: str, data: bytes, snap: ProfileSnapshot) -> IndexEntry | None:
        """Write a data object; never replace one.

        The key names the snapshot's content checksum, so an object already under
        it holds this very snapshot: our own earlier attempt (a lost reply), a
        second writer appending the same bytes, or the orphan of a crashed append
        of it. Its bytes are compared all the same. A different snapshot appended
        as this seq by someone else lives under another key, and the index
        segment's conditional write decides which of the two the stream holds.

        Returns the existing entry when this very append already landed, else
        ``None`` (go on and index it). Raises ``ConflictError`` when another
        writer appended this seq, or the bytes under the key differ.
        """
        try:
            self.objects.put(key, data, if_absent=True)
            return None
        except PreconditionFailed:
            pass
        try:
            same = self.objects.get(key).data == data
        except ObjectNotFound:
            same = False  # deleted since: someone else is cleaning this stream up
        if not same:
            raise _Conflict(
                f"object {key} of host {self.host!r} holds other bytes than this append's",
                host=self.host,
                seq=snap.seq,
                key=key,
            )
        self.refresh()
        existing = self._find(snap.seq)
        if existing is None:
            return None  # not indexed yet: index it (conditionally, as always)
        if existing.key == key and existing.checksum == snap.checksum:
            return existing
        raise _Conflict(
            f"seq {snap.seq} of host {self.host!r} was appended by another writer",
            host=self.host,
            seq=snap.seq,
        )

    def _write_segment(self, seg: IndexSegment, *, new: bool) -> None:
        key = segment_key(self.host, seg.base)
        try:
            if new:
                etag = self.objects.put(key, seg.to_bytes(), if_absent=True)
            else:
                etag = self.objects.put(key, seg.to_bytes(), if_match=self._etags[seg.base])
        except PreconditionFailed:
            self.refresh()
            if self._landed(seg):
                return  # our own earlier attempt landed, its reply was lost
            raise _Conflict(
                f"index segment {key} changed under us: another writer is appending to "
                f"host {self.host!r}",
                host=self.host,
                key=key,
            ) from None
        self._segments[seg.base] = seg
        self._etags[seg.base] = etag
        self._ranges.pop(seg.base, None)  # a hint of the segment before this append
        bases = self._group_bases()
        if not bases or bases[-1] != seg.base:
            bases.append(seg.base)

    def _landed(self, seg: IndexSegment) -> bool:
        """Whether storage already indexes ``seg``'s last entry: the same object (its key
        names its content) at the same seq. Our own earlier attempt whose reply was lost,
        or ``verify --repair`` indexing our object before our segment write landed."""
        try:
            stored = self._segment(seg.base)
        except ObjectNotFound:
            return False
        mine = seg.entries[-1]
        return any(
            e.seq == mine.seq and e.key == mine.key and e.checksum == mine.checksum
            for e in stored.entries
        )

    def relist(self) -> None:
        """List the index again on next use, keeping the segments of sealed groups
        (they never change; a compacted one is no longer listed) but not the open one's."""
        with self._lock:
            if self._bases:
                self._segments.pop(self._bases[-1], None)
                self._etags.pop(self._bases[-1], None)
            self._bases = None
            self._ranges = {}
            self._tier_view = None
            self._tiers.refresh()

    def refresh(self) -> None:
        """Forget cached index state so the next call rereads it from storage."""
        with self._lock:
            self._bases = None
            self._ranges = {}
            self._tier_view = None
            self._segments.clear()
            self._etags.clear()
            self._tiers.refresh()

    # ------------------------------------------------------------------ read

    def _remember_keyframe(self, snap: ProfileSnapshot) -> None:
        self._keyframes[snap.seq] = snap
        self._keyframes.move_to_end(snap.seq)
        while len(self._keyframes) > _KEYFRAME_CACHE:
            self._keyframes.popitem(last=False)

    def _keyframe(self, base: int) -> ProfileSnapshot:
        snap = self._keyframes.get(base)
        if snap is not None:
            self._keyframes.move_to_end(base)
            return snap
        snap = self.decode(self._raw_entry(base))
        self._remember_keyframe(snap)
        return snap

    def decode(
        self,
        entry: IndexEntry,
        data: bytes | None = None,
        keyframe: ProfileSnapshot | None = None,
        metrics: Collection[str] | None = None,
    ) -> ProfileSnapshot:
        """The snapshot ``entry`` names, decoded from its object's bytes ``data`` (read
        here when not given): the one place every read decodes (``get``, ``query`` and
        fleet queries alike). A raw delta decodes against ``keyframe``, its group's;
        ``metrics``: only those (a raw object; a tier object is decoded whole, once for
        all the snapshots it holds). Raises as ``get`` does."""
        if tier_of_key(entry.key) != "raw":
            with self._lock:
                return self._tiers.read(entry, data)
        if data is None:
            data = fetch_entry(self.objects, self.host, entry, f"index entry {entry.seq}")
        base = keyframe if entry.kind == "d" else None
        return decode_entry(self.config, self.host, entry, data, base, metrics)

    def get(self, seq: int) -> ProfileSnapshot:
        """The snapshot ``seq``, bit-exact, from the tier serving it. At most two object
        reads (keyframe cached) in the raw tier, one in the compressed tier.

        Raises ``SnapshotNotFound``, ``ObjectNotFound`` (index names a missing
        object) or a ``CorruptError`` subclass.
        """
        with self._lock:
            try:
                return self.read(self.entry(seq))
            except (ObjectNotFound, SnapshotNotFound):
                self.refresh()  # compacted and deleted since our view: look again once
                return self.read(self.entry(seq))

    def read(self, entry: IndexEntry, data: bytes | None = None) -> ProfileSnapshot:
        """The snapshot an index entry of any tier names (archive: an aggregate snapshot
        whose metadata gives ``snapcloud.resolution_ns``). ``data``: a tier object's
        bytes, read already by the caller. Raises as ``get`` does."""
        with self._lock:
            if tier_of_key(entry.key) != "raw":
                return self.decode(entry, data)
            if entry.kind == "k":
                return self._keyframe(entry.seq)
            return self.decode(entry, None, self._keyframe(entry.base))

    def _serving(self, query: SnapshotQuery | None) -> list[tuple[list[str], IndexEntry]]:
        """``(metric names, entry)`` of every entry serving reads, across tiers, in seq order."""

        def raw(base: int) -> list[tuple[list[str], IndexEntry]]:
            if not self._may_overlap(base, query):
                return []  # its hint says no window of it is in range: not read
            seg = self._segment(base)
            return [(seg.metric_names(e), e) for e in seg.entries]

        with self._lock:
            try:
                return self._tiers.serving_entries(self._group_bases(), raw, query)
            except ObjectNotFound:
                self.refresh()  # a segment went away since we listed: list again once
                return self._tiers.serving_entries(self._group_bases(), raw, query)

    def _matching(self, query: SnapshotQuery) -> Iterator[tuple[list[str], IndexEntry]]:
        wanted = set(query.metrics) if query.metrics else None
        for names, e in self._serving(query):
            if not query.overlaps(e.window_start, e.window_end):
                continue
            if query.fingerprint is not None and e.fingerprint != query.fingerprint:
                continue
            if wanted is not None and wanted.isdisjoint(names):
                continue
            yield names, e

    def plan(self, query: SnapshotQuery) -> list[IndexEntry]:
        """The index entries a query will read, from the index alone."""
        out = [e for _, e in self._matching(query)]
        return out[: query.limit] if query.limit else out

    def query(self, query: SnapshotQuery | None = None) -> Iterator[ProfileSnapshot]:
        """Stream the snapshots matching ``query``, trimmed to its range and metrics.

        Memory is bounded: one decoded snapshot plus cached keyframes. A snapshot
        whose raw size is over ``max_query_memory_bytes`` raises ``MemoryExceeded``.
        """
        query = query or SnapshotQuery()
        limit = self.config.max_query_memory_bytes
        for entry in self.plan(query):
            if entry.raw_bytes > limit:
                raise MemoryExceeded(
                    f"snapshot {entry.seq} of host {self.host!r} needs {entry.raw_bytes} bytes, "
                    f"over the query memory limit of {limit}",
                    host=self.host,
                    seq=entry.seq,
                )
            snap = self._read_again(entry)
            archived = tier_of_key(entry.key) == "archive"
            bucket = (codec.resolution_of(snap) or 1) if archived else None
            yield trim(snap, query.metrics or None, query.start_ns, query.end_ns, bucket_ns=bucket)

    def _read_again(self, entry: IndexEntry) -> ProfileSnapshot:
        """``read``; when the object went away (compacted since the plan), reread the
        index once and read the same snapshot from the tier that serves it now."""
        try:
            return self.read(entry)
        except (ObjectNotFound, SnapshotNotFound):  # the object, or its keyframe's entry
            if tier_of_key(entry.key) == "archive":
                raise
            self.refresh()
            now = self.entry(entry.seq)
            if now.checksum != entry.checksum:
                raise
            return self.read(now)

    def query_all(self, query: SnapshotQuery | None = None) -> list[ProfileSnapshot]:
        """All matching snapshots as a list; raises ``MemoryExceeded`` before reading
        when their raw size together is over ``max_query_memory_bytes`` (never truncates).
        """
        query = query or SnapshotQuery()
        planned = self.plan(query)
        need = sum(e.raw_bytes for e in planned)
        if need > self.config.max_query_memory_bytes:
            raise MemoryExceeded(
                f"query over host {self.host!r} needs up to {need} bytes for {len(planned)} "
                f"snapshots, over the limit of {self.config.max_query_memory_bytes}; "
                "narrow it or stream it with query()",
                host=self.host,
            )
        return list(self.query(query))

    def stats(self) -> StreamStats:
        """Counts and real stored bytes of the stream, from its index, across tiers
        (``segments`` counts raw groups and tier objects; archive frames count as snapshots).
        Lists ``index/{host}/`` and heads the catalog entry for their sizes."""
        st = StreamStats(host=self.host)
        groups: set[tuple[str, int]] = set()
        for _, e in self._serving(None):
            tier = tier_of_key(e.key)
            raw = tier == "raw"
            groups.add(("raw", e.base) if raw else (e.key, 0))
            st.snapshots += 1
            st.tiers[tier] = st.tiers.get(tier, 0) + 1
            st.keyframes += raw and e.kind == "k"
            st.deltas += raw and e.kind == "d"
            st.samples += e.samples
            st.stored_bytes += e.stored_bytes
            st.raw_bytes += e.raw_bytes
            st.fingerprints[e.fingerprint] = st.fingerprints.get(e.fingerprint, 0) + 1
            st.first_ns = (
                e.window_start if st.first_ns is None else min(st.first_ns, e.window_start)
            )
            st.last_ns = e.window_end if st.last_ns is None else max(st.last_ns, e.window_end)
        st.segments = len(groups)
        st.tiers = dict(sorted(st.tiers.items()))
        st.index_bytes = sum(info.size for info in self.objects.list(host_index_prefix(self.host)))
        catalog = self.objects.head(catalog_key(self.host))
        st.catalog_bytes = catalog.size if catalog is not None else 0
        return st
