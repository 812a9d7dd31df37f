"""Check a host stream against its objects, and rebuild its index from the objects alone.

``verify_stream`` reads every data object of a host, checks its frame and
content checksums (a delta against its keyframe), and compares the objects
with the index: an entry without its object, an object that differs from its
entry, a corrupt object are problems; an object with no entry is an orphan
(garbage from an interrupted append, not an error). With ``repair=True`` the
index segments are rewritten from the readable objects, so a lost or damaged
index comes back; corrupt objects are reported and left in place.

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
from snapcloud.errors import CorruptError, ObjectNotFound
from snapcloud.index import (
    CatalogEntry,
    IndexEntry,
    IndexSegment,
    ObjectKey,
    catalog_key,
    parse_data_key,
    segment_key,
)
from snapcloud.models import ProfileSnapshot
from snapcloud.progress import ProgressCallback, ProgressUpdate
from snapcloud.store._stream import IncrementalSnapshotStore
from snapcloud.store._tierfmt import (
    MARKS_PREFIX,
    TIERS,
    TierSegment,
    decode_archive,
    decode_compressed,
    parse_tier_data_key,
    parse_tier_index_key,
)

__all__ = ["Problem", "VerifyReport", "verify_stream"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with where it is."""

    host: str
    key: str
    what: str


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


@dataclass(frozen=True)
class _Held:
    """A readable data object: its parsed key, its snapshot and its size."""

    pk: ObjectKey
    key: str
    snap: ProfileSnapshot
    size: int


def _read_objects(
    stream: IncrementalSnapshotStore,
    report: VerifyReport,
    baseless: dict[str, ObjectKey],
    progress: ProgressCallback | None = None,
) -> dict[str, _Held]:
    """Decode every readable data object of the host, keyed by object key.

    A seq may have several objects (content-named keys: an orphan beside the one
    the index names); a delta is decoded against the keyframe its header names
    by seq and content checksum.
    """
    host = stream.host
    parsed: list[tuple[ObjectKey, str]] = []
    for info in stream.objects.list(f"raw/{host}/"):
        pk = parse_data_key(info.key)
        if pk is None or pk.host != host:
            report.problems.append(Problem(host, info.key, "not a snapshot object key"))
            continue
        parsed.append((pk, info.key))
    # Keyframes first, so every delta finds its decoded base.
    parsed.sort(key=lambda item: (not item[0].is_keyframe, item[0].seq, item[1]))
    good: dict[str, _Held] = {}
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
                    baseless[key] = pk  # a problem if indexed, else an orphan (see caller)
                    continue
            snap = codec.decode(
                data, base=base, max_decoded_size=stream.config.max_decoded_bytes, key=key
            )
        except CorruptError as exc:
            report.problems.append(Problem(host, key, exc.message))
            continue
        if snap.seq != pk.seq or snap.host != host or pk.checksum not in (None, snap.checksum):
            report.problems.append(
                Problem(host, key, "key and content disagree on host, seq or checksum")
            )
            continue
        good[key] = _Held(pk, key, snap, len(data))
        if base is not None:
            snap._cache["delta_base"] = (base.seq, base.checksum)
        if pk.is_keyframe:
            keyframes[(snap.seq, snap.checksum)] = snap
    return good


def verify_stream(
    stream: IncrementalSnapshotStore,
    *,
    repair: bool = False,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Check every object and index entry of one host; optionally rebuild the index.

    ``progress`` hears of each data object read (``snapcloud.progress``).
    """
    report = VerifyReport(host=stream.host)
    baseless: dict[str, ObjectKey] = {}  # deltas whose keyframe is gone or unreadable
    good = _read_objects(stream, report, baseless, progress)
    indexed: set[str] = set()
    for seg in _raw_segments(stream, report):
        for e in seg.entries:
            report.entries += 1
            indexed.add(e.key)
            if e.key in baseless:
                report.problems.append(
                    Problem(stream.host, e.key, f"its keyframe {e.base} is unreadable")
                )
            else:
                _check_entry(e, good, report)
    # Unindexed objects are orphans, a delta whose keyframe went first included (left by
    # a lifecycle rule or an operator): garbage for the compactor, not damage.
    report.orphans.extend(key for key in sorted({*good, *baseless}) if key not in indexed)
    for tier in TIERS[1:]:
        _check_tier(stream, tier, report)
    _check_marks_and_catalog(stream, report)
    if repair:
        report.repaired_segments = _rebuild(stream, good, indexed, report)
    return report


def _raw_segments(stream: IncrementalSnapshotStore, report: VerifyReport) -> list[IndexSegment]:
    """Every readable raw index segment; each unreadable one is a problem (the rest still count)."""
    out = []
    for base in list(stream._group_bases()):
        try:
            seg = stream._segment(base)
            out.append(seg)
            _check_range_hint(stream, seg, report)
        except ObjectNotFound:
            continue  # deleted (compacted) while we listed
        except CorruptError as exc:
            report.problems.append(
                Problem(
                    stream.host,
                    str(exc.context.get("key") or segment_key(stream.host, base)),
                    exc.message,
                )
            )
    return out


def _check_range_hint(
    stream: IncrementalSnapshotStore, seg: IndexSegment, report: VerifyReport
) -> None:
    """A range hint the listing vouches for must cover every window of its group:
    queries skip the group's segment by it."""
    hint = stream.range_hint(seg.base)
    if hint is None:
        return
    for e in seg.entries:
        if e.window_start < hint[0] or e.window_end > hint[1]:
            report.problems.append(
                Problem(
                    stream.host,
                    segment_key(stream.host, seg.base),
                    f"its range hint [{hint[0]}, {hint[1]}) leaves out the window of entry "
                    f"{e.seq}, so queries would skip it (verify --repair deletes the hint)",
                )
            )
            return


def _check_tier(stream: IncrementalSnapshotStore, tier: str, report: VerifyReport) -> None:
    """Decode every object of one retention tier and compare each with its tier segment.

    A tier object no segment names is an orphan (a compaction interrupted before
    its index, or one whose index was retired first); a segment whose object is
    missing, unreadable or holds other snapshots is a problem.
    """
    host = stream.host
    limit = stream.config.max_decoded_bytes
    held: dict[str, tuple[int, set[tuple[int, int]]]] = {}
    for info in list(stream.objects.list(f"{tier}/{host}/")):
        parsed = parse_tier_data_key(info.key)
        if parsed is None or parsed[0] != tier or parsed[1] != host:
            report.problems.append(Problem(host, info.key, f"not a {tier} tier object key"))
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
            report.problems.append(Problem(host, info.key, exc.message))
            continue
        first, last = parsed[2], parsed[3]
        if any(s.host != host or not first <= s.seq <= last for s in snaps):
            report.problems.append(
                Problem(host, info.key, "key and content disagree on host or seq")
            )
            continue
        held[info.key] = (len(data), {(s.seq, s.checksum) for s in snaps})
    named: set[str] = set()
    for info in list(stream.objects.list(f"index/{host}/{tier}/")):
        item = parse_tier_index_key(info.key, host, tier)  # type: ignore[arg-type]
        if item is None:
            report.problems.append(Problem(host, info.key, f"not a {tier} tier index key"))
            continue
        try:
            seg = TierSegment.from_bytes(stream.objects.get(info.key).data, key=info.key)
        except ObjectNotFound:
            continue
        except CorruptError as exc:
            report.problems.append(Problem(host, info.key, exc.message))
            continue
        report.entries += len(seg.seq)
        named.add(seg.key)
        if seg.host != host or seg.tier != tier or seg.index_key != info.key:
            report.problems.append(Problem(host, info.key, "tier index names another item"))
            continue
        found = held.get(seg.key)
        if found is None:
            report.problems.append(
                Problem(host, info.key, f"tier index names missing or unreadable {seg.key}")
            )
        elif found != (seg.object_bytes, set(zip(seg.seq, seg.checksum, strict=True))):
            report.problems.append(
                Problem(host, info.key, f"tier index disagrees with its object {seg.key}")
            )
    report.orphans.extend(sorted(set(held) - named))


class _Checked(BaseModel):
    """Any checksummed JSON object of a host (a deletion mark): its host, the rest as is."""

    model_config = ConfigDict(extra="allow")

    host: str


def _check_marks_and_catalog(stream: IncrementalSnapshotStore, report: VerifyReport) -> None:
    """Deletion marks and the catalog entry of a host: checksum, version, host."""
    host = stream.host
    keys = [info.key for info in stream.objects.list(f"{MARKS_PREFIX}{host}/")]
    for key in [*keys, catalog_key(host)]:
        try:
            data = stream.objects.get(key).data
        except ObjectNotFound:
            continue
        report.objects += 1
        report.bytes_read += len(data)
        try:
            if key.startswith(MARKS_PREFIX):
                found = load_checked(_Checked, data, what="deletion mark", version=1, key=key).host
            else:
                found = CatalogEntry.from_bytes(data, key=key).host
        except CorruptError as exc:
            report.problems.append(Problem(host, key, exc.message))
            continue
        if found != host:
            report.problems.append(Problem(host, key, f"names host {found!r}"))


def _check_entry(e: IndexEntry, good: dict[str, _Held], report: VerifyReport) -> None:
    held = good.get(e.key)
    if held is None:
        report.problems.append(
            Problem(report.host, e.key, f"index entry {e.seq} has no readable object")
        )
        return
    if (
        held.pk.seq != e.seq
        or held.pk.base != e.base
        or held.snap.checksum != e.checksum
        or held.size != e.stored_bytes
    ):
        report.problems.append(
            Problem(report.host, e.key, f"index entry {e.seq} disagrees with its object")
        )


def _choose(good: dict[str, _Held], indexed: set[str], report: VerifyReport) -> dict[int, _Held]:
    """One object per seq to rebuild the index from, keyframe groups kept consistent.

    Where the index named an object it is kept. Where several unnamed objects hold
    one seq (the index was lost, and an orphan lies beside the acknowledged
    object), the first by key is taken and a problem says so: nothing tells which
    one was acknowledged.
    """
    by_seq: dict[int, list[_Held]] = {}
    for held in good.values():
        by_seq.setdefault(held.pk.seq, []).append(held)
    chosen: dict[int, _Held] = {}
    for seq in sorted(by_seq):
        # a delta only counts against the keyframe chosen for its group
        cands = [
            c
            for c in by_seq[seq]
            if c.pk.is_keyframe or (c.pk.base in chosen and _delta_base_ok(c, chosen[c.pk.base]))
        ]
        if not cands:
            continue
        named = [c for c in cands if c.key in indexed]
        pick = (named or sorted(cands, key=lambda c: c.key))[0]
        if len(cands) > 1 and not named:
            report.problems.append(
                Problem(
                    report.host,
                    pick.key,
                    f"{len(cands)} objects hold seq {seq} and no index names one; "
                    "rebuilt from this one",
                )
            )
        chosen[seq] = pick
    return chosen


def _delta_base_ok(delta: _Held, keyframe: _Held) -> bool:
    """Whether ``delta`` was decoded against this very keyframe (its content)."""
    return keyframe.pk.is_keyframe and delta.snap._cache.get("delta_base") == (
        keyframe.snap.seq,
        keyframe.snap.checksum,
    )


def _rebuild(
    stream: IncrementalSnapshotStore,
    good: dict[str, _Held],
    indexed: set[str],
    report: VerifyReport,
) -> int:
    """Rewrite every index segment from the decoded objects; drop segments with no group."""
    host = stream.host
    segments: dict[int, IndexSegment] = {}
    for seq, held in sorted(_choose(good, indexed, report).items()):
        pk, snap = held.pk, held.snap
        seg = segments.setdefault(pk.base, IndexSegment(host=host, base=pk.base))
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
    for base, seg in segments.items():
        stream.objects.put(segment_key(host, base), seg.to_bytes())
    prefix = f"index/{host}/raw/"
    for info in list(stream.objects.list(prefix)):
        name = info.key[len(prefix) :]
        if not (name.endswith(".json") and name[:-5].isdigit() and int(name[:-5]) in segments):
            stream.objects.delete(info.key)
    stream.refresh()
    return len(segments)
