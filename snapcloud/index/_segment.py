"""Index segments: one JSON object per keyframe group, and the object key layout.

Keys (relative to the store's root or bucket prefix; tier first so S3
lifecycle rules can filter by prefix)::

    raw/{host}/{yyyy}/{mm}/{dd}/{seq:012}-{crc:08x}.k.snap             keyframe
    raw/{host}/{yyyy}/{mm}/{dd}/{seq:012}-{crc:08x}.d{base:012}.snap   delta against `base`
    index/{host}/raw/{base:012}.json                                   segment of group `base`
    index/{host}/raw/{base:012}_{start}_{end}_{etag}.range             its time range (hint)

``crc`` is the snapshot's content checksum: a data key names its content, so two
writers (or a writer and the orphan of a crashed one) that append different
snapshots as the same seq write different objects, and the index segment's
conditional write alone decides which one the stream holds. No data object is
ever overwritten. Keys without ``-{crc}`` (written before it was added) still parse.

A segment is rewritten as its group grows (one PUT per append, whatever the
store's size) and never changes once the next group has started. It carries
a CRC32C over its canonical JSON, so a changed byte is found on read.

A range hint is an empty object whose key says which windows a sealed group's
segment holds (``start``: the earliest window start, ``end``: the latest window
end, in ns), as of the segment's ETag ``etag``. It arrives with the listing a
reader makes anyway, so a query of a time range skips the segments of groups
outside it without reading them. A reader trusts a hint only while the segment's
listed ETag equals the hint's: a segment rewritten after its hint (or a hint left
by a deleted segment) is read as if there were no hint. The compactor writes
hints (docs/architecture.md, D18).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from snapcloud._checked_json import dump_checked, load_checked
from snapcloud.errors import CorruptError

__all__ = [
    "SEGMENT_VERSION",
    "IndexEntry",
    "IndexSegment",
    "ObjectKey",
    "RangeHint",
    "data_key",
    "parse_data_key",
    "parse_range_hint",
    "range_hint_key",
    "segment_key",
    "segment_prefix",
]

SEGMENT_VERSION = 1
_MAX_DATE_NS = 253_402_300_799 * 10**9  # 9999-12-31T23:59:59Z
_DATA_KEY = re.compile(
    r"(?P<tier>raw)/(?P<host>[^/]+)/\d{4}/\d{2}/\d{2}/"
    r"(?P<seq>\d{12})(?:-(?P<crc>[0-9a-f]{8}))?\.(?:k|d(?P<base>\d{12}))\.snap"
)
_ETAG = re.compile(r"[0-9A-Za-z-]{1,64}")  # S3's hex digests ("-N" when multipart)
_RANGE_HINT = re.compile(r"(\d{12})_(-?\d{1,20})_(-?\d{1,20})_(" + _ETAG.pattern + r")\.range")


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


def _date_path(window_start: int) -> str:
    if not 0 <= window_start < _MAX_DATE_NS:
        return "0000/00/00"
    day = dt.datetime.fromtimestamp(window_start // 10**9, tz=dt.UTC)
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"


def data_key(host: str, seq: int, base: int, window_start: int, checksum: int) -> str:
    """The key of a snapshot object (a keyframe when ``base == seq``) holding the
    snapshot whose content checksum is ``checksum``."""
    kind = "k" if base == seq else f"d{base:012d}"
    return f"raw/{host}/{_date_path(window_start)}/{seq:012d}-{checksum:08x}.{kind}.snap"


class ObjectKey(BaseModel):
    """What a data object's key says about it."""

    model_config = ConfigDict(frozen=True)

    host: str
    seq: int
    base: int
    checksum: int | None = None  # None: a key written before keys named their content

    @property
    def is_keyframe(self) -> bool:
        return self.seq == self.base


def parse_data_key(key: str) -> ObjectKey | None:
    """Host, seq and base from a data object key, or ``None`` if it is not one."""
    m = _DATA_KEY.fullmatch(key)
    if m is None:
        return None
    seq = int(m["seq"])
    return ObjectKey(
        host=m["host"],
        seq=seq,
        base=int(m["base"]) if m["base"] else seq,
        checksum=int(m["crc"], 16) if m["crc"] else None,
    )


def segment_prefix(host: str) -> str:
    return f"index/{host}/raw/"


def segment_key(host: str, base: int) -> str:
    return f"{segment_prefix(host)}{base:012d}.json"


@dataclass(frozen=True)
class RangeHint:
    """What a range hint's key says: group ``base`` holds windows within
    ``[start_ns, end_ns)`` while its segment's ETag is ``etag``."""

    base: int
    start_ns: int
    end_ns: int
    etag: str


def range_hint_key(host: str, base: int, start_ns: int, end_ns: int, etag: str) -> str | None:
    """The key of a range hint, or ``None`` for an ETag a key cannot carry (a store
    whose ETags are not hex digests gets no hints; its queries read every segment)."""
    tag = etag.strip('"')
    if _ETAG.fullmatch(tag) is None:
        return None
    return f"{segment_prefix(host)}{base:012d}_{start_ns}_{end_ns}_{tag}.range"


def parse_range_hint(name: str) -> RangeHint | None:
    """A range hint from its name under ``segment_prefix(host)``, or ``None``."""
    m = _RANGE_HINT.fullmatch(name)
    if m is None:
        return None
    return RangeHint(int(m[1]), int(m[2]), int(m[3]), m[4])
