"""The object layout: every key snapcloud stores is built and parsed here, and nowhere else.

Keys under the store's root (or bucket prefix), tier first so that S3 lifecycle
rules can filter by prefix::

    raw/{host}/{yyyy}/{mm}/{dd}/{seq:012}-{crc:08x}.k.snap            keyframe
    raw/{host}/{yyyy}/{mm}/{dd}/{seq:012}-{crc:08x}.d{base:012}.snap  delta against keyframe `base`
    compressed/{host}/{yyyy}/{mm}/{dd}/{first:012}-{last:012}.snapt   a keyframe group, lossless
    archive/{host}/{yyyy}/{mm}/{dd}/{first:012}-{last:012}.snapt      groups of one day, downsampled
    index/{host}/raw/{base:012}.json                                  index segment of group `base`
    index/{host}/raw/{base:012}_{start}_{end}_{etag}.range            range hint of a sealed group
    index/{host}/{tier}/{first:012}-{last:012}_{start}_{end}.json     compressed/archive index
    marks/deletions/{host}/{tier}-{first:012}-{last:012}.json         retire mark
    marks/deletions/{host}/orphans-{created_ns:020}.json              orphan mark
    marks/deletions/{host}/conflict-{seq:012}.json                    conflict record
    marks/leases/{host}.json                                          writer lease of a host stream
    marks/leases/compactor.json                                       the compactor's lease
    catalog/{host}.json                                               fleet catalog entry
    config/policy.json                                                store policy

``{yyyy}/{mm}/{dd}`` is the UTC day of the (first) window's start, ``0000/00/00``
for a start outside years 1970..9999. ``{crc}`` is the snapshot's content
checksum: a data key names its content, so two writers (or a writer and the
orphan of a crashed one) that append different snapshots as the same seq write
different objects, and the index segment's conditional write alone decides which
one the stream holds; no data object is ever overwritten. Raw keys without
``-{crc}`` (written before it was added) still parse.

A range hint's key says which windows a sealed group's segment holds (``start``:
the earliest window start, ``end``: the latest window end, in ns) as of the
segment's ETag ``etag``. A tier index key names the seq range it covers and its
time bounds. So a reader resolves which tier serves each group, and prunes by
time, from listings alone (docs/architecture.md, D14, D18).

Everything under ``marks/`` is about coordination, not data: readers list
``marks/deletions/{host}/`` before ``index/{host}/`` and stop using an item as
soon as its retire mark exists (docs/architecture.md, D12).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from snapcloud.models import validate_host

__all__ = [
    "ARCHIVE_PREFIX",
    "CATALOG_PREFIX",
    "COMPACTOR_LEASE_KEY",
    "COMPRESSED_PREFIX",
    "INDEX_PREFIX",
    "LEASES_PREFIX",
    "MARKS_PREFIX",
    "POLICY_KEY",
    "RAW_PREFIX",
    "TIERS",
    "ObjectKey",
    "RangeHint",
    "Tier",
    "TierItem",
    "catalog_key",
    "conflict_key",
    "conflict_seq",
    "data_key",
    "host_index_prefix",
    "host_marks_prefix",
    "lease_key",
    "mark_key",
    "names_content",
    "orphan_mark_key",
    "parse_data_key",
    "parse_mark_key",
    "parse_range_hint",
    "parse_segment_name",
    "parse_tier_data_key",
    "parse_tier_index_key",
    "range_hint_key",
    "segment_key",
    "segment_prefix",
    "tier_counted",
    "tier_data_key",
    "tier_data_prefix",
    "tier_index_key",
    "tier_index_prefix",
    "tier_of_key",
]

Tier = Literal["raw", "compressed", "archive"]
TIERS: tuple[Tier, ...] = ("raw", "compressed", "archive")

RAW_PREFIX = "raw/"
COMPRESSED_PREFIX = "compressed/"
ARCHIVE_PREFIX = "archive/"
INDEX_PREFIX = "index/"
MARKS_PREFIX = "marks/deletions/"  # retire and orphan marks, conflict records
LEASES_PREFIX = "marks/leases/"
COMPACTOR_LEASE_KEY = f"{LEASES_PREFIX}compactor.json"
CATALOG_PREFIX = "catalog/"
POLICY_KEY = "config/policy.json"

_MAX_DATE_NS = 253_402_300_799 * 10**9  # 9999-12-31T23:59:59Z
_SEQ = r"(\d{12})-(\d{12})"
_DATA_KEY = re.compile(
    r"(?P<tier>raw)/(?P<host>[^/]+)/\d{4}/\d{2}/\d{2}/"
    r"(?P<seq>\d{12})(?:-(?P<crc>[0-9a-f]{8}))?\.(?:k|d(?P<base>\d{12}))\.snap"
)
_TIER_DATA_KEY = re.compile(
    r"(compressed|archive)/([^/]+)/(?:\d{4}/\d{2}/\d{2}|0000/00/00)/" + _SEQ + r"\.snapt"
)
_TIER_INDEX_NAME = re.compile(_SEQ + r"_(-?\d+)_(-?\d+)\.json")
_ETAG = re.compile(r"[0-9A-Za-z-]{1,64}")  # S3's hex digests ("-N" when multipart)
_RANGE_HINT = re.compile(r"(\d{12})_(-?\d{1,20})_(-?\d{1,20})_(" + _ETAG.pattern + r")\.range")
_MARK_NAME = re.compile(r"(raw|compressed|archive)-" + _SEQ + r"\.json")
_CONFLICT_NAME = re.compile(r"conflict-(\d{12})\.json")


def _date_path(window_start: int) -> str:
    if not 0 <= window_start < _MAX_DATE_NS:
        return "0000/00/00"
    day = dt.datetime.fromtimestamp(window_start // 10**9, tz=dt.UTC)
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"


# --------------------------------------------------------------------------- raw data


def data_key(host: str, seq: int, base: int, window_start: int, checksum: int) -> str:
    """The key of a snapshot object (a keyframe when ``base == seq``) holding the
    snapshot whose content checksum is ``checksum``."""
    kind = "k" if base == seq else f"d{base:012d}"
    return f"{RAW_PREFIX}{host}/{_date_path(window_start)}/{seq:012d}-{checksum:08x}.{kind}.snap"


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


def names_content(key: str) -> bool:
    """Whether ``key`` is a raw data key that names its snapshot's content checksum:
    such an object is never overwritten, so its bytes may be cached by key."""
    m = _DATA_KEY.fullmatch(key)
    return m is not None and m["crc"] is not None


# --------------------------------------------------------------------------- raw index


def host_index_prefix(host: str) -> str:
    """Everything indexed of ``host``: raw segments, range hints and tier indexes."""
    return f"{INDEX_PREFIX}{host}/"


def segment_prefix(host: str) -> str:
    """The raw index segments (and range hints) of ``host``."""
    return tier_index_prefix("raw", host)


def segment_key(host: str, base: int) -> str:
    """The key of the index segment of ``host``'s keyframe group ``base``."""
    return f"{segment_prefix(host)}{base:012d}.json"


def parse_segment_name(name: str) -> int | None:
    """The group base a name under ``segment_prefix(host)`` is the segment of, or ``None``."""
    return int(name[:-5]) if name.endswith(".json") and name[:-5].isdigit() else None


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


# --------------------------------------------------------------------------- tiers


@dataclass(frozen=True)
class TierItem:
    """One compressed or archive index segment as its key names it."""

    tier: Tier
    first: int
    last: int
    start_ns: int
    end_ns: int
    key: str


def tier_data_prefix(tier: Tier, host: str) -> str:
    """The data objects of ``host`` in ``tier``."""
    return f"{tier}/{host}/"


def tier_data_key(tier: Tier, host: str, first: int, last: int, window_start: int) -> str:
    """The key of a compressed or archive object covering seqs ``first..last``."""
    return (
        f"{tier_data_prefix(tier, host)}{_date_path(window_start)}/{first:012d}-{last:012d}.snapt"
    )


def parse_tier_data_key(key: str) -> tuple[Tier, str, int, int] | None:
    """``(tier, host, first, last)`` of a tier object key, or ``None``."""
    m = _TIER_DATA_KEY.fullmatch(key)
    if m is None:
        return None
    tier: Tier = "compressed" if m[1] == "compressed" else "archive"
    return tier, m[2], int(m[3]), int(m[4])


def tier_index_prefix(tier: Tier, host: str) -> str:
    """The index segments of ``host`` in ``tier``."""
    return f"{host_index_prefix(host)}{tier}/"


def tier_index_key(tier: Tier, host: str, first: int, last: int, start: int, end: int) -> str:
    """The key of a tier index segment: its seq range and time bounds are in its name."""
    return f"{tier_index_prefix(tier, host)}{first:012d}-{last:012d}_{start}_{end}.json"


def parse_tier_index_key(key: str, host: str, tier: Tier) -> TierItem | None:
    """The item a tier index key names, or ``None`` if it is not one."""
    prefix = tier_index_prefix(tier, host)
    if not key.startswith(prefix):
        return None
    m = _TIER_INDEX_NAME.fullmatch(key[len(prefix) :])
    if m is None:
        return None
    return TierItem(tier, int(m[1]), int(m[2]), int(m[3]), int(m[4]), key)


def tier_of_key(key: str) -> Tier:
    """The tier an object key lives in (by its first path segment)."""
    head = key.split("/", 1)[0]
    if head == "compressed":
        return "compressed"
    if head == "archive":
        return "archive"
    return "raw"


def tier_counted(key: str) -> Tier | None:
    """The tier a stored object counts in: a data object or an index segment (range
    hints included) in its tier; ``None`` for marks, leases, the catalog, the policy."""
    parts = key.split("/")
    head = parts[0] + "/"
    if head in (RAW_PREFIX, COMPRESSED_PREFIX, ARCHIVE_PREFIX):
        return tier_of_key(key)
    if head == INDEX_PREFIX:
        return tier_of_key(parts[2] + "/") if len(parts) > 2 else "raw"
    return None


# --------------------------------------------------------------------------- marks


def host_marks_prefix(host: str) -> str:
    """The deletion marks and conflict records of ``host``."""
    return f"{MARKS_PREFIX}{host}/"


def mark_key(host: str, tier: Tier, first: int, last: int) -> str:
    """The retire mark of one tier item (a raw group, a compressed or archive object)."""
    return f"{host_marks_prefix(host)}{tier}-{first:012d}-{last:012d}.json"


def orphan_mark_key(host: str, created_ns: int) -> str:
    """A mark listing objects no index names (readers ignore it)."""
    return f"{host_marks_prefix(host)}orphans-{max(created_ns, 0):020d}.json"


def parse_mark_key(key: str, host: str) -> tuple[Tier, int, int] | None:
    """``(tier, first, last)`` of a retire mark key of ``host``; ``None`` for other keys."""
    prefix = host_marks_prefix(host)
    if not key.startswith(prefix):
        return None
    m = _MARK_NAME.fullmatch(key[len(prefix) :])
    if m is None:
        return None
    tier: Tier = "raw" if m[1] == "raw" else "compressed" if m[1] == "compressed" else "archive"
    return tier, int(m[2]), int(m[3])


def conflict_key(host: str, seq: int) -> str:
    """Where the conflict record of ``seq`` of ``host`` lives (beside its deletion marks,
    so the listings readers and the compactor make anyway find it)."""
    return f"{host_marks_prefix(host)}conflict-{seq:012d}.json"


def conflict_seq(key: str, host: str) -> int | None:
    """The seq a conflict record key of ``host`` names, or ``None`` for any other key."""
    prefix = host_marks_prefix(host)
    m = _CONFLICT_NAME.fullmatch(key[len(prefix) :]) if key.startswith(prefix) else None
    return int(m[1]) if m else None


# --------------------------------------------------------------------------- leases, catalog


def lease_key(host: str) -> str:
    """The object key of a host stream's writer lease."""
    return f"{LEASES_PREFIX}{host}.json"


def catalog_key(host: str) -> str:
    """The key of ``host``'s catalog entry."""
    return f"{CATALOG_PREFIX}{validate_host(host)}.json"
