"""Check a host stream against its objects, and rebuild its index from the objects alone.

``verify_stream`` reads every data object of a host, checks its frame and
content checksums (a delta against its keyframe), and compares the objects
with the index: an entry without its object, an object that differs from its
entry, a corrupt object are problems; an object with no entry is an orphan
(garbage from an interrupted append, not an error). With ``repair=True`` the
index segments are rewritten from the readable objects, so a lost or damaged
index comes back; corrupt objects are reported and left in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snapcloud import codec
from snapcloud.errors import CorruptError, ObjectNotFound
from snapcloud.index import IndexEntry, IndexSegment, ObjectKey, parse_data_key, segment_key
from snapcloud.models import ProfileSnapshot
from snapcloud.store._stream import IncrementalSnapshotStore

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


def _read_objects(
    stream: IncrementalSnapshotStore, report: VerifyReport
) -> dict[int, tuple[ObjectKey, str, ProfileSnapshot, int]]:
    """Decode every readable data object: seq -> (parsed key, key, snapshot, size)."""
    host = stream.host
    parsed: list[tuple[ObjectKey, str]] = []
    for info in stream.objects.list(f"raw/{host}/"):
        pk = parse_data_key(info.key)
        if pk is None or pk.host != host:
            report.problems.append(Problem(host, info.key, "not a snapshot object key"))
            continue
        parsed.append((pk, info.key))
    # Keyframes first, so every delta finds its decoded base.
    parsed.sort(key=lambda item: (not item[0].is_keyframe, item[0].seq))
    good: dict[int, tuple[ObjectKey, str, ProfileSnapshot, int]] = {}
    for pk, key in parsed:
        report.objects += 1
        try:
            data = stream.objects.get(key).data
        except ObjectNotFound:
            continue  # deleted while we listed
        report.bytes_read += len(data)
        base = None
        if not pk.is_keyframe:
            if pk.base not in good:
                report.problems.append(Problem(host, key, f"its keyframe {pk.base} is unreadable"))
                continue
            base = good[pk.base][2]
        try:
            snap = codec.decode(
                data, base=base, max_decoded_size=stream.config.max_decoded_bytes, key=key
            )
        except CorruptError as exc:
            report.problems.append(Problem(host, key, exc.message))
            continue
        if snap.seq != pk.seq or snap.host != host:
            report.problems.append(Problem(host, key, "key and content disagree on host or seq"))
            continue
        good[pk.seq] = (pk, key, snap, len(data))
    return good


def verify_stream(stream: IncrementalSnapshotStore, *, repair: bool = False) -> VerifyReport:
    """Check every object and index entry of one host; optionally rebuild the index."""
    report = VerifyReport(host=stream.host)
    good = _read_objects(stream, report)
    indexed: set[int] = set()
    try:
        for seg in stream.segments():
            for e in seg.entries:
                report.entries += 1
                indexed.add(e.seq)
                _check_entry(e, good, report)
    except CorruptError as exc:
        report.problems.append(Problem(stream.host, str(exc.context.get("key")), exc.message))
    for seq, (_, key, _, _) in sorted(good.items()):
        if seq not in indexed:
            report.orphans.append(key)
    if repair:
        report.repaired_segments = _rebuild(stream, good)
    return report


def _check_entry(
    e: IndexEntry,
    good: dict[int, tuple[ObjectKey, str, ProfileSnapshot, int]],
    report: VerifyReport,
) -> None:
    held = good.get(e.seq)
    if held is None:
        report.problems.append(
            Problem(report.host, e.key, f"index entry {e.seq} has no readable object")
        )
        return
    _, key, snap, size = held
    if key != e.key or snap.checksum != e.checksum or size != e.stored_bytes:
        report.problems.append(
            Problem(report.host, e.key, f"index entry {e.seq} disagrees with its object")
        )


def _rebuild(
    stream: IncrementalSnapshotStore,
    good: dict[int, tuple[ObjectKey, str, ProfileSnapshot, int]],
) -> int:
    """Rewrite every index segment from the decoded objects; drop segments with no group."""
    host = stream.host
    segments: dict[int, IndexSegment] = {}
    for seq in sorted(good):
        pk, key, snap, size = good[seq]
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
                stored_bytes=size,
                raw_bytes=snap.raw_bytes,
                samples=snap.sample_count,
                checksum=snap.checksum,
                key=key,
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
