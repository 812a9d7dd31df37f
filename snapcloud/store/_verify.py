"""Check a host stream against its objects, and rebuild its index from the objects alone.

``verify_stream`` reads every data object of a host, checks its frame and
content checksums (a delta against its keyframe), and compares the objects
with the index: an entry without its object, an object that differs from its
entry, a corrupt object are problems. An object no index names is garbage (an
*orphan*) only when it provably lost a race or a tier holds its data; any other
is a *lost entry*, a problem, since it may be acknowledged data whose index entry
was lost (``snapcloud.store._orphans`` holds the rule, shared with the compactor).

With ``repair=True`` and something to repair, the stream's writer lease is taken
(the recorder's, ``marks/leases/{host}.json``; refused while a writer holds it),
the host is checked again under it, and each raw index segment is rebuilt from
the objects: entries the index named, lost entries, and where several objects
claim one seq with none named, the one a chain of deltas (or the catalog's
totals) supports; with no such support the conflict is reported and neither is
indexed. Every segment is written conditionally on the ETag read (another round
when a writer without the lease changed it), and a segment naming objects the
listing did not show but that exist is never replaced or deleted. Corrupt
objects are reported and left in place.

The retention tiers are checked too: every compressed and archive object is
decoded (frame and content checksums) and compared with its tier index
segment; deletion marks and the host's catalog entry are checked against their
own checksums. So any changed byte in any object of a host is reported by key.
Writer leases carry no checksum and are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from snapcloud import codec
from snapcloud._checked_json import load_checked
from snapcloud.codec import decode_archive, decode_compressed
from snapcloud.coordination import ConflictRecord, Lease, dead_local_holder, default_owner
from snapcloud.errors import (
    ChecksumMismatch,
    CorruptError,
    LeaseHeld,
    ObjectNotFound,
    PreconditionFailed,
)
from snapcloud.index import CatalogEntry, IndexEntry, IndexSegment, TierSegment
from snapcloud.layout import (
    MARKS_PREFIX,
    TIERS,
    ObjectKey,
    Tier,
    catalog_key,
    conflict_key,
    conflict_seq,
    host_marks_prefix,
    lease_key,
    parse_data_key,
    parse_mark_key,
    parse_range_hint,
    parse_segment_name,
    parse_tier_data_key,
    parse_tier_index_key,
    segment_key,
    segment_prefix,
    tier_data_prefix,
    tier_index_prefix,
)
from snapcloud.models import ProfileSnapshot
from snapcloud.progress import ProgressCallback, ProgressUpdate
from snapcloud.store._orphans import SeqIndex
from snapcloud.store._stream import HostStream

__all__ = [
    "CONFLICT",
    "DAMAGE",
    "LOST_ENTRY",
    "NOT_REPAIRED",
    "Problem",
    "VerifyReport",
    "verify_stream",
]

#: Problem kinds: stored bytes or an index that are wrong; an object no index names
#: that may be acknowledged data; several objects claiming one seq; a repair not done.
DAMAGE = "damage"
LOST_ENTRY = "lost entry"
CONFLICT = "conflict"
NOT_REPAIRED = "not repaired"

_REPAIR_ROUNDS = 5  # each lost conditional write (a writer without the lease) is one more


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with where it is and its kind (``DAMAGE``, ``LOST_ENTRY``, ...)."""

    host: str
    key: str
    what: str
    kind: str = DAMAGE


@dataclass
class VerifyReport:
    """What ``verify`` saw for one host stream."""

    host: str
    objects: int = 0
    bytes_read: int = 0
    entries: int = 0
    orphans: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    repaired_segments: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, key: str, what: str, kind: str = DAMAGE) -> None:
        """Record a problem of this host."""
        self.problems.append(Problem(self.host, key, what, kind))


@dataclass(frozen=True)
class _Held:
    """A readable data object: its parsed key, its snapshot, its size and, for a delta,
    the keyframe it decoded against (``(seq, content checksum)``)."""

    pk: ObjectKey
    key: str
    snap: ProfileSnapshot
    size: int
    delta_base: tuple[int, int] | None


@dataclass(frozen=True)
class _Stored:
    """A raw index segment as read: its key, ETag, and content (``None``: unreadable)."""

    key: str
    etag: str
    seg: IndexSegment | None


@dataclass
class _Seen:
    """Everything one pass of verify read of a host: what a repair works from."""

    good: dict[str, _Held] = field(default_factory=dict)
    baseless: dict[str, ObjectKey] = field(default_factory=dict)  # keyframe gone or unreadable
    listed: set[str] = field(default_factory=set)  # raw data keys the listing showed
    segments: dict[int, _Stored] = field(default_factory=dict)
    indexed: dict[str, IndexEntry] = field(default_factory=dict)  # raw key -> its entry
    seqs: SeqIndex = field(default_factory=SeqIndex)
    retired: set[str] = field(default_factory=set)  # raw keys a retire mark names
    retired_bases: set[int] = field(default_factory=set)
    catalog: CatalogEntry | None = None
    conflicts: dict[int, ConflictRecord] = field(default_factory=dict)  # seq -> its record

    def garbage(self, key: str) -> bool:
        """An unindexed raw object that lost a race, is retired, or a tier holds."""
        return key in self.retired or self.seqs.raw_garbage(key)


def _read_objects(
    stream: HostStream,
    report: VerifyReport,
    seen: _Seen,
    progress: ProgressCallback | None = None,
) -> None:
    """Decode every readable data object of the host into ``seen.good``; ``progress``
    hears of each one read.

    A seq may have several objects (content-named keys: an orphan beside the one
    the index names); a delta is decoded against the keyframe its header names
    by seq and content checksum (``seen.baseless`` when that keyframe is gone).
    """
    host = stream.host
    parsed: list[tuple[ObjectKey, str]] = []
    for info in stream.objects.list(tier_data_prefix("raw", host)):
        pk = parse_data_key(info.key)
        if pk is None or pk.host != host:
            report.add(info.key, "not a snapshot object key")
            continue
        seen.listed.add(info.key)
        parsed.append((pk, info.key))
    seen.seqs.list_objects(seen.listed)
    # Keyframes first, so every delta finds its decoded base.
    parsed.sort(key=lambda item: (not item[0].is_keyframe, item[0].seq, item[1]))
    keyframes: dict[tuple[int, int], ProfileSnapshot] = {}  # (seq, checksum) -> keyframe
    for pk, key in parsed:
        report.objects += 1
        try:
            data = stream.objects.get(key).data
        except ObjectNotFound:
            continue  # deleted while we listed
        report.bytes_read += len(data)
        if progress is not None:
            progress(
                ProgressUpdate("objects", report.objects, len(parsed), report.bytes_read, host)
            )
        base = None
        try:
            if not pk.is_keyframe:
                header = codec.read_header(data, key=key)
                base = keyframes.get((header.base_seq, header.base_checksum))
                if base is None or header.base_seq != pk.base:
                    seen.baseless[key] = pk
                    continue
            decoded = codec.decode_object(
                data, base=base, max_decoded_size=stream.config.max_decoded_bytes, key=key
            )
        except CorruptError as exc:
            report.add(key, exc.message)
            continue
        snap = decoded.snapshot
        if snap.seq != pk.seq or snap.host != host or pk.checksum not in (None, snap.checksum):
            report.add(key, "key and content disagree on host, seq or checksum")
            continue
        seen.good[key] = _Held(pk, key, snap, len(data), decoded.delta_base)
        if pk.is_keyframe:
            keyframes[(snap.seq, snap.checksum)] = snap


def verify_stream(
    stream: HostStream,
    *,
    repair: bool = False,
    owner: str | None = None,
    lease_ttl_s: float = 120.0,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Check every object and index entry of one host; with ``repair``, rebuild its raw
    index under the stream's writer lease (``owner``: the lease owner id, default one
    unique to this process). A repair refused because a writer holds the lease, or
    given up because the index kept changing, is a ``NOT_REPAIRED`` problem.
    Raises ``BackendError`` when storage fails.
    """
    report, _ = _verify(stream, progress)
    if not repair or report.ok:
        return report
    lease = Lease(stream.objects, lease_key(stream.host), owner or default_owner(), lease_ttl_s)
    try:
        lease.acquire(steal_if=dead_local_holder)
    except LeaseHeld as exc:
        report.add(
            lease.key,
            f"not repaired: {exc.message}; a writer is appending to this host (repair when "
            "it has stopped)",
            NOT_REPAIRED,
        )
        return report
    try:
        for _ in range(_REPAIR_ROUNDS):
            stream.refresh()
            report, seen = _verify(stream)  # again, under the lease: what the rebuild uses
            try:
                if _rebuild(stream, seen, report, lease):
                    break
            except LeaseHeld as exc:  # a slow repair whose lease expired and was taken
                report.add(lease.key, f"repair stopped: {exc.message}", NOT_REPAIRED)
                break
        else:
            report.add(
                segment_prefix(stream.host),
                f"not repaired: the index kept changing under {_REPAIR_ROUNDS} attempts "
                "(a writer without the lease is appending)",
                NOT_REPAIRED,
            )
    finally:
        lease.release()
        stream.refresh()
    return report


def _verify(
    stream: HostStream, progress: ProgressCallback | None = None
) -> tuple[VerifyReport, _Seen]:
    """One full check of the host: the report, and what was read."""
    report = VerifyReport(host=stream.host)
    seen = _Seen()
    _read_objects(stream, report, seen, progress)
    _read_segments(stream, report, seen)
    _check_marks_and_catalog(stream, report, seen)
    unnamed = [key for tier in TIERS[1:] for key in _check_tier(stream, tier, report, seen)]
    _classify_unindexed(report, seen, unnamed)
    return report, seen


def _read_segments(stream: HostStream, report: VerifyReport, seen: _Seen) -> None:
    """Every raw index segment with its ETag, each entry checked against its object;
    an unreadable segment is a problem (the rest still count)."""
    host = stream.host
    for base in stream.group_bases():
        key = segment_key(host, base)
        try:
            got = stream.objects.get(key)
        except ObjectNotFound:
            continue  # deleted (compacted) while we listed
        try:
            seg = IndexSegment.from_bytes(got.data, key=key)
            if seg.base != base or seg.host != host:
                raise ChecksumMismatch(f"index segment at {key} names another group", key=key)
        except CorruptError as exc:
            report.add(key, exc.message)
            seen.segments[base] = _Stored(key, got.etag, None)
            continue
        seen.segments[base] = _Stored(key, got.etag, seg)
        _check_range_hint(stream, seg, report)
        if seg.entries:
            seen.seqs.raw_spans.append((seg.base, seg.entries[-1].seq))
        for e in seg.entries:
            report.entries += 1
            seen.indexed[e.key] = e
            seen.seqs.name([e.key])
            if e.key in seen.baseless:
                report.add(e.key, f"its keyframe {e.base} is unreadable")
            else:
                _check_entry(e, seen.good, report)


def _classify_unindexed(report: VerifyReport, seen: _Seen, tier_keys: list[str]) -> None:
    """Unindexed objects: garbage (orphans) or lost entries (problems). ``tier_keys``:
    readable tier objects no tier index names (judged once every tier's index is known:
    an archive item serves the seqs of the compressed objects it superseded)."""
    for key in sorted({*seen.good, *seen.baseless}):
        if key in seen.indexed:
            continue
        if seen.garbage(key):
            report.orphans.append(key)
        elif key in seen.baseless:
            report.add(
                key,
                f"holds seq {seen.baseless[key].seq}, which no index names, and its keyframe "
                "is gone or unreadable: it cannot be indexed again",
            )
        else:
            report.add(
                key,
                f"holds seq {seen.good[key].pk.seq}, which no index names: a lost entry "
                "(verify --repair indexes it again)",
                LOST_ENTRY,
            )
    for key in tier_keys:
        parsed = parse_tier_data_key(key)
        assert parsed is not None  # only keys that parsed are held
        if key in seen.retired or seen.seqs.tier_garbage(parsed[2], parsed[3]):
            report.orphans.append(key)
        else:
            report.add(
                key,
                f"a {parsed[0]} object no index names, holding seqs {parsed[2]}-{parsed[3]} "
                "that nothing else serves: a lost entry (left in place; the compactor keeps it)",
                LOST_ENTRY,
            )


def _check_range_hint(stream: HostStream, seg: IndexSegment, report: VerifyReport) -> None:
    """A range hint the listing vouches for must cover every window of its group:
    queries skip the group's segment by it."""
    hint = stream.range_hint(seg.base)
    if hint is None:
        return
    for e in seg.entries:
        if e.window_start < hint[0] or e.window_end > hint[1]:
            report.add(
                segment_key(stream.host, seg.base),
                f"its range hint [{hint[0]}, {hint[1]}) leaves out the window of entry "
                f"{e.seq}, so queries would skip it (verify --repair deletes the hint)",
            )
            return


def _check_tier(stream: HostStream, tier: Tier, report: VerifyReport, seen: _Seen) -> list[str]:
    """Decode every object of one retention tier and compare each with its tier segment;
    return the readable objects no segment names (``_classify_unindexed`` judges them:
    garbage when raw groups or other tier items serve all their seqs, as after a
    compaction interrupted before its index). A segment whose object is missing,
    unreadable or holds other snapshots is a problem.
    """
    host = stream.host
    limit = stream.config.max_decoded_bytes
    held: dict[str, tuple[int, set[tuple[int, int]]]] = {}
    for info in list(stream.objects.list(tier_data_prefix(tier, host))):
        parsed = parse_tier_data_key(info.key)
        if parsed is None or parsed[0] != tier or parsed[1] != host:
            report.add(info.key, f"not a {tier} tier object key")
            continue
        try:
            data = stream.objects.get(info.key).data
        except ObjectNotFound:
            continue
        report.objects += 1
        report.bytes_read += len(data)
        try:
            if tier == "compressed":
                snaps = list(decode_compressed(data, key=info.key, max_decoded=limit).values())
            else:
                snaps = [s for _, s in decode_archive(data, key=info.key, max_decoded=limit)]
        except CorruptError as exc:
            report.add(info.key, exc.message)
            continue
        first, last = parsed[2], parsed[3]
        if any(s.host != host or not first <= s.seq <= last for s in snaps):
            report.add(info.key, "key and content disagree on host or seq")
            continue
        held[info.key] = (len(data), {(s.seq, s.checksum) for s in snaps})
    named: set[str] = set()
    for info in list(stream.objects.list(tier_index_prefix(tier, host))):
        item = parse_tier_index_key(info.key, host, tier)
        if item is None:
            report.add(info.key, f"not a {tier} tier index key")
            continue
        seen.seqs.tier_spans.append((item.first, item.last))
        try:
            seg = TierSegment.from_bytes(stream.objects.get(info.key).data, key=info.key)
        except ObjectNotFound:
            continue
        except CorruptError as exc:
            report.add(info.key, exc.message)
            continue
        report.entries += len(seg.seq)
        named.add(seg.key)
        if seg.host != host or seg.tier != tier or seg.index_key != info.key:
            report.add(info.key, "tier index names another item")
            continue
        found = held.get(seg.key)
        if found is None:
            report.add(info.key, f"tier index names missing or unreadable {seg.key}")
        elif found != (seg.object_bytes, set(zip(seg.seq, seg.checksum, strict=True))):
            report.add(info.key, f"tier index disagrees with its object {seg.key}")
    return sorted(set(held) - named)


class _Checked(BaseModel):
    """Any checksummed JSON object of a host (a deletion mark): its host, the rest as is."""

    model_config = ConfigDict(extra="allow")

    host: str


def _check_marks_and_catalog(stream: HostStream, report: VerifyReport, seen: _Seen) -> None:
    """Deletion marks and the catalog entry of a host: checksum, version, host. A retire
    mark's raw keys are being deleted: they count as retired, not lost."""
    host = stream.host
    keys = [info.key for info in stream.objects.list(host_marks_prefix(host))]
    for key in [*keys, catalog_key(host)]:
        try:
            data = stream.objects.get(key).data
        except ObjectNotFound:
            continue
        report.objects += 1
        report.bytes_read += len(data)
        try:
            if conflict_seq(key, host) is not None:
                record = ConflictRecord.from_bytes(data, key=key)
                found = record.host
                _note_conflict(key, record, report, seen)
            elif key.startswith(MARKS_PREFIX):
                mark = load_checked(_Checked, data, what="deletion mark", version=1, key=key)
                found = mark.host
                _note_mark(key, mark, host, seen)
            else:
                entry = CatalogEntry.from_bytes(data, key=key)
                found = entry.host
                seen.catalog = entry if found == host else None
        except CorruptError as exc:
            report.add(key, exc.message)
            continue
        if found != host:
            report.add(key, f"names host {found!r}")


def _note_conflict(key: str, record: ConflictRecord, report: VerifyReport, seen: _Seen) -> None:
    """A conflict record: its objects are kept, and it is a problem until resolved."""
    if conflict_seq(key, record.host) != record.seq:
        report.add(key, f"conflict record names seq {record.seq}, not its key's")
        return
    seen.conflicts[record.seq] = record
    seen.seqs.kept.update(record.keys)
    left = [k for k in record.keys if k in seen.listed]
    report.add(
        key,
        f"seq {record.seq} is claimed by {len(left)} object(s) and nothing tells which was "
        f"acknowledged: {', '.join(left) or '(none left)'}; delete all but the right one, "
        "then verify --repair indexes it"
        if len(left) > 1
        else f"seq {record.seq}: conflict resolved by hand; verify --repair indexes what is left",
        CONFLICT,
    )


def _note_mark(key: str, mark: _Checked, host: str, seen: _Seen) -> None:
    parsed = parse_mark_key(key, host)
    if parsed is None:
        return  # an orphan mark: its keys are garbage by its writer's judgment, not evidence
    extra = mark.model_extra or {}
    keys = [k for k in extra.get("data_keys", ()) if isinstance(k, str)]
    seen.retired.update(keys)
    seen.seqs.name(keys)
    if parsed[0] == "raw":
        seen.retired_bases.add(parsed[1])


def _check_entry(e: IndexEntry, good: dict[str, _Held], report: VerifyReport) -> None:
    held = good.get(e.key)
    if held is None:
        report.add(e.key, f"index entry {e.seq} has no readable object")
        return
    if (
        held.pk.seq != e.seq
        or held.pk.base != e.base
        or held.snap.checksum != e.checksum
        or held.size != e.stored_bytes
    ):
        report.add(e.key, f"index entry {e.seq} disagrees with its object")


# ------------------------------------------------------------------ repair


@dataclass
class _Choice:
    """What the rebuild indexes, and the conflict records it writes or removes."""

    chosen: dict[int, _Held] = field(default_factory=dict)
    conflicts: dict[int, list[str]] = field(default_factory=dict)  # new: seq -> candidates
    resolved: list[int] = field(default_factory=list)  # records no longer needed


def _choose(seen: _Seen, report: VerifyReport) -> _Choice:
    """One object per seq to rebuild the index from, keyframe groups kept consistent.

    Candidates are the objects the index names and the lost entries (never garbage).
    An object the index named is kept. Where several unnamed objects hold one seq,
    the keyframe the chain of deltas decodes against is taken (only one can have
    deltas: the loser of the race for its seq never got to append any); failing
    that, the one the catalog's raw totals account for; failing that, none: the
    conflict is reported and recorded (``snapcloud.store._orphans``), since nothing
    tells which one was acknowledged. A recorded seq left with one object takes it.
    """
    support: dict[tuple[int, int], int] = {}
    by_seq: dict[int, list[_Held]] = {}
    for held in seen.good.values():
        if held.key not in seen.indexed and seen.garbage(held.key):
            continue
        by_seq.setdefault(held.pk.seq, []).append(held)
        base = held.delta_base
        if base is not None:
            support[base] = support.get(base, 0) + 1
    out = _Choice()
    chosen = out.chosen
    undecided: dict[int, list[_Held]] = {}
    for seq in sorted(by_seq):
        # a delta only counts against the keyframe chosen for its group
        cands = [
            c
            for c in by_seq[seq]
            if c.pk.is_keyframe or (c.pk.base in chosen and _delta_base_ok(c, chosen[c.pk.base]))
        ]
        named = [c for c in cands if c.key in seen.indexed]
        if named or len(cands) == 1:
            chosen[seq] = (named or cands)[0]
        elif cands:
            counts = [support.get((c.snap.seq, c.snap.checksum), 0) for c in cands]
            backed = [c for c, n in zip(cands, counts, strict=True) if n]
            if len(backed) == 1:
                chosen[seq] = _resolved(report, cands, backed[0], f"{max(counts)} deltas name it")
            else:
                undecided[seq] = cands
    if len(undecided) == 1:
        ((seq, cands),) = undecided.items()
        pick = _by_catalog(seen, chosen, cands) if seq not in seen.conflicts else None
        if pick is not None:
            chosen[seq] = _resolved(report, cands, pick, "the catalog's raw totals account for it")
            del undecided[seq]
    for seq, cands in undecided.items():
        if seq in seen.conflicts:
            continue  # recorded already, and reported
        out.conflicts[seq] = [c.key for c in cands]
        report.add(
            conflict_key(report.host, seq),
            f"{len(cands)} objects hold seq {seq} and no index, delta chain or catalog "
            f"tells which was acknowledged: {', '.join(c.key for c in cands)}; none is "
            "indexed, all are kept, and a conflict record keeps writers off this seq",
            CONFLICT,
        )
    out.resolved = [
        seq
        for seq, record in seen.conflicts.items()
        if sum(k in seen.listed for k in record.keys) <= 1
    ]
    return out


def _resolved(report: VerifyReport, cands: list[_Held], pick: _Held, why: str) -> _Held:
    others = ", ".join(c.key for c in cands if c is not pick)
    report.add(
        pick.key,
        f"{len(cands)} objects hold seq {pick.pk.seq} and no index names one; indexed this "
        f"one ({why}); {others} lost the race",
        CONFLICT,
    )
    return pick


def _by_catalog(seen: _Seen, chosen: dict[int, _Held], cands: list[_Held]) -> _Held | None:
    """The one candidate that makes the rebuilt raw tier's snapshots, samples and bytes
    equal the catalog's (written by the acknowledged writer), if exactly one does."""
    raw = seen.catalog.tiers.get("raw") if seen.catalog is not None else None
    if raw is None:
        return None
    serving = [
        h
        for h in chosen.values()
        if h.pk.base not in seen.retired_bases and not seen.seqs.raw_garbage(h.key)
    ]
    left = (
        raw.snapshots - len(serving),
        raw.samples - sum(h.snap.sample_count for h in serving),
        raw.stored_bytes - sum(h.size for h in serving),
    )
    fits = [c for c in cands if (1, c.snap.sample_count, c.size) == left]
    return fits[0] if len(fits) == 1 else None


def _delta_base_ok(delta: _Held, keyframe: _Held) -> bool:
    """Whether ``delta`` was decoded against this very keyframe (its content)."""
    return keyframe.pk.is_keyframe and delta.delta_base == (
        keyframe.snap.seq,
        keyframe.snap.checksum,
    )


def _segments_from(
    host: str, chosen: dict[int, _Held], stored: dict[int, _Stored]
) -> dict[int, IndexSegment]:
    """The raw segments the chosen objects make (name tables start from the stored ones,
    so a segment that was right rebuilds to the same entries)."""
    segments: dict[int, IndexSegment] = {}
    for seq, held in sorted(chosen.items()):
        pk, snap = held.pk, held.snap
        seg = segments.get(pk.base)
        if seg is None:
            old = stored.get(pk.base)
            names = list(old.seg.names) if old is not None and old.seg is not None else []
            seg = segments[pk.base] = IndexSegment(host=host, base=pk.base, names=names)
        seg.add(
            IndexEntry(
                seq=seq,
                kind="k" if pk.is_keyframe else "d",
                base=pk.base,
                window_start=snap.window_start,
                window_end=snap.window_end,
                fingerprint=snap.fingerprint,
                metrics=seg.name_ids([m.name for m in snap.metrics]),
                stored_bytes=held.size,
                raw_bytes=snap.raw_bytes,
                samples=snap.sample_count,
                checksum=snap.checksum,
                key=held.key,
            )
        )
    return segments


def _rebuild(stream: HostStream, seen: _Seen, report: VerifyReport, lease: Lease) -> bool:
    """Rewrite the raw segments from the chosen objects, each conditionally on the ETag
    read; return False when one changed since (another round is needed).

    A segment naming objects the listing did not show but that exist is left as it
    is (the listing is incomplete: rebuilding from it would drop acknowledged data).
    """
    host, objects = stream.host, stream.objects
    choice = _choose(seen, report)
    for seq, keys in choice.conflicts.items():
        lease.keep()
        record = ConflictRecord(host=host, seq=seq, keys=tuple(keys))
        try:
            objects.put(conflict_key(host, seq), record.to_bytes(), if_absent=True)
        except PreconditionFailed:
            return False  # written since we looked: look again
    fresh = _segments_from(host, choice.chosen, seen.segments)
    for base in sorted(set(fresh) | set(seen.segments)):
        stored, new = seen.segments.get(base), fresh.get(base)
        if stored is not None and _names_unseen(stream, stored, new, seen, report):
            continue
        if stored is not None and stored.seg is not None and stored.seg == new:
            continue  # right as it is
        lease.keep()
        try:
            if new is None:
                assert stored is not None
                now = objects.head(stored.key)
                if now is not None and now.etag.strip('"') != stored.etag.strip('"'):
                    return False  # changed since we read it (deletes are unconditional)
                objects.delete(stored.key)
            elif stored is None:
                objects.put(segment_key(host, base), new.to_bytes(), if_absent=True)
            else:
                objects.put(stored.key, new.to_bytes(), if_match=stored.etag)
        except PreconditionFailed:
            return False
    report.repaired_segments = len(fresh)
    for seq in choice.resolved:
        lease.keep()
        objects.delete(conflict_key(host, seq))
    # Range hints name the ETag of the segment they were computed from; they are all
    # dropped (the compactor writes them again), as is anything else that is no segment.
    prefix = segment_prefix(host)
    for info in list(objects.list(prefix)):
        name = info.key[len(prefix) :]
        if parse_segment_name(name) is None or parse_range_hint(name):
            lease.keep()
            objects.delete(info.key)
    return True


def _names_unseen(
    stream: HostStream,
    stored: _Stored,
    new: IndexSegment | None,
    seen: _Seen,
    report: VerifyReport,
) -> bool:
    """Whether the stored segment names objects the rebuild would drop that exist although
    the listing did not show them (then it is reported and must not be replaced)."""
    if stored.seg is None:
        return False
    keep = {e.key for e in new.entries} if new is not None else set()
    unseen = [
        e.key
        for e in stored.seg.entries
        if e.key not in keep and e.key not in seen.listed and stream.objects.head(e.key)
    ]
    if unseen:
        report.add(
            stored.key,
            f"not repaired: it names {len(unseen)} object(s) that exist but were not listed "
            f"(first {unseen[0]}): the store's listing misses objects its reads find",
            NOT_REPAIRED,
        )
    return bool(unseen)
