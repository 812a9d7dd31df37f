"""Retention tier formats: keys, tier index segments, and the compressed and archive objects.

Shared by the read side (``_tiers``) and the compactor (``snapcloud.retention``),
so the store never imports the retention package. Keys::

    compressed/{host}/{yyyy}/{mm}/{dd}/{first:012}-{last:012}.snapt   a group, lossless
    archive/{host}/{yyyy}/{mm}/{dd}/{first:012}-{last:012}.snapt      groups, downsampled
    index/{host}/{tier}/{first:012}-{last:012}_{start_ns}_{end_ns}.json
    marks/deletions/{host}/{tier}-{first:012}-{last:012}.json         retire mark
    marks/deletions/{host}/orphans-{created_ns:020}.json              orphan mark

A tier index key names the seq range it covers and its time bounds, so a reader
resolves which tier serves each group, and prunes by time, from listings alone.

Tier object, format 1::

    offset  size  field
    0       4     magic b"SNPT"
    4       1     format version (1)
    5       1     tier: 1 compressed, 2 archive
    6       2     flags, must be 0
    8       4     size T of the table of contents (a zstd frame of canonical JSON)
    12      4     frame count n
    16      8n    frame sizes, u64 LE
    16+8n   T     table of contents
    ...           n frames, each a snapshot object (``snapcloud.codec``, format 1 or 2)
    end-4   4     CRC32C of every byte before it

A compressed object holds its group as *merged* frames: each distinct metric
(name, kind, unit) of the group becomes one series, the group's windows
concatenated, encoded once by the codec (so its transforms and zstd see the
whole hour, not one minute). The table of contents keeps each snapshot's facts
and the length of each of its metrics, so every snapshot is cut back out bit
for bit and checked against its content checksum. An archive object holds one
aggregate snapshot per (resolution, fingerprint); its metrics are named
``{metric}:{aggregate}`` and its metadata says ``snapcloud.tier`` and
``snapcloud.resolution_ns``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import crc32c
import numpy as np
import numpy.typing as npt
import pydantic_core
import zstandard
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from snapcloud import codec
from snapcloud._checked_json import dump_checked, load_checked
from snapcloud.errors import (
    ChecksumMismatch,
    CorruptError,
    OversizedObject,
    TruncatedObject,
    UnknownFormat,
)
from snapcloud.index import IndexEntry
from snapcloud.models import (
    MetricColumns,
    MetricSeries,
    ProfileSnapshot,
    canonical_json,
    content_checksum,
    metric_table,
)

__all__ = [
    "MARKS_PREFIX",
    "META_RESOLUTION",
    "META_TIER",
    "TIERS",
    "Tier",
    "TierItem",
    "TierSegment",
    "archive_snapshot_names",
    "decode_archive",
    "decode_compressed",
    "encode_archive",
    "encode_compressed",
    "mark_key",
    "orphan_mark_key",
    "parse_mark_key",
    "parse_tier_data_key",
    "parse_tier_index_key",
    "resolution_of",
    "tier_data_key",
    "tier_index_key",
    "tier_of_key",
]

Tier = Literal["raw", "compressed", "archive"]
TIERS: tuple[Tier, ...] = ("raw", "compressed", "archive")
MARKS_PREFIX = "marks/deletions/"
META_TIER = "snapcloud.tier"
META_RESOLUTION = "snapcloud.resolution_ns"

_MAGIC = b"SNPT"
_VERSION = 1
_TIER_CODE = {"compressed": 1, "archive": 2}
_HEAD = struct.Struct("<4sBBHII")
_MAX_FRAMES = 1 << 16
_MAX_DATE_NS = 253_402_300_799 * 10**9
_SEQ = r"(\d{12})-(\d{12})"
_INDEX_NAME = re.compile(_SEQ + r"_(-?\d+)_(-?\d+)\.json")
_DATA_KEY = re.compile(
    r"(compressed|archive)/([^/]+)/(?:\d{4}/\d{2}/\d{2}|0000/00/00)/" + _SEQ + r"\.snapt"
)
_MARK_NAME = re.compile(r"(raw|compressed|archive)-" + _SEQ + r"\.json")
_local = threading.local()
_COLUMNS = (
    "seq",
    "window_start",
    "window_end",
    "fingerprint",
    "metric_set",
    "stored_bytes",
    "raw_bytes",
    "samples",
    "checksum",
    "resolution_ns",
)


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class TierItem:
    """One compressed or archive index segment as its key names it."""

    tier: Tier
    first: int
    last: int
    start_ns: int
    end_ns: int
    key: str


def _date_path(window_start: int) -> str:
    if not 0 <= window_start < _MAX_DATE_NS:
        return "0000/00/00"
    day = dt.datetime.fromtimestamp(window_start // 10**9, tz=dt.UTC)
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"


def tier_data_key(tier: Tier, host: str, first: int, last: int, window_start: int) -> str:
    """The key of a compressed or archive object covering seqs ``first..last``."""
    return f"{tier}/{host}/{_date_path(window_start)}/{first:012d}-{last:012d}.snapt"


def parse_tier_data_key(key: str) -> tuple[Tier, str, int, int] | None:
    """``(tier, host, first, last)`` of a tier object key, or ``None``."""
    m = _DATA_KEY.fullmatch(key)
    if m is None:
        return None
    tier: Tier = "compressed" if m[1] == "compressed" else "archive"
    return tier, m[2], int(m[3]), int(m[4])


def tier_index_key(tier: Tier, host: str, first: int, last: int, start: int, end: int) -> str:
    """The key of a tier index segment: its seq range and time bounds are in its name."""
    return f"index/{host}/{tier}/{first:012d}-{last:012d}_{start}_{end}.json"


def parse_tier_index_key(key: str, host: str, tier: Tier) -> TierItem | None:
    """The item a tier index key names, or ``None`` if it is not one."""
    prefix = f"index/{host}/{tier}/"
    if not key.startswith(prefix):
        return None
    m = _INDEX_NAME.fullmatch(key[len(prefix) :])
    if m is None:
        return None
    return TierItem(tier, int(m[1]), int(m[2]), int(m[3]), int(m[4]), key)


def mark_key(host: str, tier: Tier, first: int, last: int) -> str:
    """The retire mark of one tier item (a raw group, a compressed or archive object)."""
    return f"{MARKS_PREFIX}{host}/{tier}-{first:012d}-{last:012d}.json"


def orphan_mark_key(host: str, created_ns: int) -> str:
    """A mark listing objects no index names (readers ignore it)."""
    return f"{MARKS_PREFIX}{host}/orphans-{max(created_ns, 0):020d}.json"


def parse_mark_key(key: str, host: str) -> tuple[Tier, int, int] | None:
    """``(tier, first, last)`` of a retire mark key of ``host``; ``None`` for other keys."""
    prefix = f"{MARKS_PREFIX}{host}/"
    if not key.startswith(prefix):
        return None
    m = _MARK_NAME.fullmatch(key[len(prefix) :])
    if m is None:
        return None
    tier: Tier = "raw" if m[1] == "raw" else "compressed" if m[1] == "compressed" else "archive"
    return tier, int(m[2]), int(m[3])


def tier_of_key(key: str) -> Tier:
    """The tier an object key lives in (by its first path segment)."""
    head = key.split("/", 1)[0]
    if head == "compressed":
        return "compressed"
    if head == "archive":
        return "archive"
    return "raw"


def resolution_of(snapshot: ProfileSnapshot) -> int | None:
    """The bucket width (ns) of a downsampled archive snapshot; ``None`` at full resolution."""
    value = snapshot.metadata.get(META_RESOLUTION)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def archive_snapshot_names(name: str, kind: str) -> list[str]:
    """The aggregate series an archive snapshot keeps for one metric."""
    aggs = ["count", "sum", "min", "max", "last"]
    if kind == "counter":
        aggs += ["first", "increase"]
    return [f"{name}:{a}" for a in aggs]


# --------------------------------------------------------------------------- tier segments


class TierSegment(BaseModel):
    """The index of one compressed or archive object, its entries stored column-wise.

    Compressed: one entry per snapshot (self-contained: kind ``k``, base = seq).
    Archive: one entry per aggregate frame, ``resolution_ns`` per entry; its metric
    ids name the *source* metrics. Every entry's ``key`` is the tier object's key.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    host: str
    tier: Literal["compressed", "archive"]
    first_seq: int = Field(ge=0)
    last_seq: int = Field(ge=0)
    start_ns: int
    end_ns: int
    key: str
    object_bytes: int = Field(ge=0)
    groups: list[tuple[int, int]]
    source_snapshots: int = Field(ge=0)
    source_samples: int = Field(ge=0)
    created_ns: int
    names: list[str]
    metric_sets: list[list[int]]
    fingerprints: list[str]
    seq: list[int]
    window_start: list[int]
    window_end: list[int]
    fingerprint: list[int]
    metric_set: list[int]
    stored_bytes: list[int]
    raw_bytes: list[int]
    samples: list[int]
    checksum: list[int]
    resolution_ns: list[int]
    _entries: list[IndexEntry] | None = PrivateAttr(default=None)

    @property
    def index_key(self) -> str:
        """Where this segment is stored."""
        return tier_index_key(
            self.tier, self.host, self.first_seq, self.last_seq, self.start_ns, self.end_ns
        )

    @property
    def entries(self) -> list[IndexEntry]:
        """The entries as ``IndexEntry`` objects (built once, trusted: the segment is checked)."""
        if self._entries is None:
            self._entries = [
                IndexEntry.model_construct(
                    seq=self.seq[i],
                    kind="k",
                    base=self.seq[i],
                    window_start=self.window_start[i],
                    window_end=self.window_end[i],
                    fingerprint=self.fingerprints[self.fingerprint[i]],
                    metrics=tuple(self.metric_sets[self.metric_set[i]]),
                    stored_bytes=self.stored_bytes[i],
                    raw_bytes=self.raw_bytes[i],
                    samples=self.samples[i],
                    checksum=self.checksum[i],
                    key=self.key,
                )
                for i in range(len(self.seq))
            ]
        return self._entries

    def metric_names(self, entry: IndexEntry) -> list[str]:
        """The (source) metric names of one entry."""
        return [self.names[i] for i in entry.metrics]

    def finest(self) -> list[IndexEntry]:
        """The entries at the finest resolution this segment holds (all, for compressed)."""
        if not self.resolution_ns:
            return self.entries
        low = min(self.resolution_ns)
        return [e for e, r in zip(self.entries, self.resolution_ns, strict=True) if r == low]

    def resolution(self, entry: IndexEntry) -> int:
        """The resolution of an entry: 0 for full resolution."""
        if not self.resolution_ns:
            return 0
        for e, r in zip(self.entries, self.resolution_ns, strict=True):
            if e.seq == entry.seq and e.checksum == entry.checksum:
                return r
        return 0

    def covers(self, base: int) -> bool:
        """Whether the keyframe group ``base`` is one this segment supersedes."""
        return any(b == base for b, _ in self.groups)

    @classmethod
    def build(
        cls,
        *,
        host: str,
        tier: Literal["compressed", "archive"],
        key: str,
        object_bytes: int,
        groups: Sequence[tuple[int, int]],
        source_snapshots: int,
        source_samples: int,
        created_ns: int,
        rows: Sequence[tuple[ProfileSnapshot, int, int]],
        window: tuple[int, int],
    ) -> TierSegment:
        """A segment from ``(snapshot, stored bytes, resolution_ns)`` rows, in seq order."""
        names: dict[str, int] = {}
        sets: dict[tuple[int, ...], int] = {}
        fps: dict[str, int] = {}
        recs = []
        for snap, stored, resolution in rows:
            ids = tuple(names.setdefault(n, len(names)) for n in _source_names(snap))
            recs.append(
                (
                    snap.seq,
                    snap.window_start,
                    snap.window_end,
                    fps.setdefault(snap.fingerprint, len(fps)),
                    sets.setdefault(ids, len(sets)),
                    stored,
                    snap.raw_bytes,
                    snap.sample_count,
                    snap.checksum,
                    resolution,
                )
            )
        cols = {k: [r[i] for r in recs] for i, k in enumerate(_COLUMNS)}
        if tier == "compressed":
            cols["resolution_ns"] = []
        return cls(
            host=host,
            tier=tier,
            first_seq=groups[0][0],
            last_seq=groups[-1][1],
            start_ns=window[0],
            end_ns=window[1],
            key=key,
            object_bytes=object_bytes,
            groups=list(groups),
            source_snapshots=source_snapshots,
            source_samples=source_samples,
            created_ns=created_ns,
            names=list(names),
            metric_sets=[list(s) for s in sets],
            fingerprints=list(fps),
            **cols,
        )

    def to_bytes(self) -> bytes:
        """Canonical JSON with a ``crc32c`` field over everything else."""
        return dump_checked(self)

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str | None = None) -> TierSegment:
        """Parse and check a tier segment. Raises ``CorruptError`` subclasses naming the key."""
        seg = load_checked(cls, data, what="tier segment", version=1, key=key)
        n = len(seg.seq)
        columns = (
            seg.window_start,
            seg.window_end,
            seg.fingerprint,
            seg.metric_set,
            seg.stored_bytes,
            seg.raw_bytes,
            seg.samples,
            seg.checksum,
        )
        if any(len(c) != n for c in columns) or len(seg.resolution_ns) not in (0, n):
            raise CorruptError(f"tier segment at {key}: columns differ in length", key=key)
        if any(not 0 <= i < len(seg.fingerprints) for i in seg.fingerprint) or any(
            not 0 <= i < len(seg.metric_sets) for i in seg.metric_set
        ):
            raise CorruptError(f"tier segment at {key}: id out of range", key=key)
        if any(not 0 <= i < len(seg.names) for s in seg.metric_sets for i in s):
            raise CorruptError(f"tier segment at {key}: metric id out of range", key=key)
        return seg


def _source_names(snap: ProfileSnapshot) -> list[str]:
    """Metric names as a query sees them: an archive ``cpu.util:min`` counts as ``cpu.util``."""
    if META_TIER not in snap.metadata:
        return [m.name for m in snap.metrics]
    seen: dict[str, None] = {}
    for m in snap.metrics:
        seen.setdefault(m.name.rpartition(":")[0] or m.name, None)
    return list(seen)


# --------------------------------------------------------------------------- tier objects


def _zstd(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("cctx", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def _pack(tier: str, toc: dict[str, Any], frames: Sequence[bytes], level: int) -> bytes:
    toc_z = _zstd(min(level, 9)).compress(canonical_json(toc))  # small: 19 buys nothing
    head = _HEAD.pack(_MAGIC, _VERSION, _TIER_CODE[tier], 0, len(toc_z), len(frames))
    sizes = struct.pack(f"<{len(frames)}Q", *(len(f) for f in frames))
    body = b"".join([head, sizes, toc_z, *frames])
    return body + struct.pack("<I", crc32c.crc32c(body))


def _unpack(
    data: bytes, tier: str, *, key: str | None, max_decoded: int
) -> tuple[dict[str, Any], list[bytes]]:
    """Check a tier object's frame and return its table of contents and its frames."""
    if len(data) < _HEAD.size + 4:
        raise TruncatedObject(f"tier object of {len(data)} bytes is too short at {key}", key=key)
    magic, version, code, flags, toc_size, count = _HEAD.unpack_from(data)
    if magic != _MAGIC:
        raise UnknownFormat(f"not a snapcloud tier object (bad magic) at {key}", key=key)
    if version != _VERSION or flags != 0 or code != _TIER_CODE[tier] or count > _MAX_FRAMES:
        raise UnknownFormat(
            f"tier object version {version}, tier {code}, flags {flags:#x} not readable at {key}",
            key=key,
        )
    offset = _HEAD.size + 8 * count
    if len(data) < offset + 4:
        raise TruncatedObject(f"tier object shorter than its header at {key}", key=key)
    sizes = struct.unpack_from(f"<{count}Q", data, _HEAD.size)
    if offset + toc_size + sum(sizes) + 4 != len(data):
        raise TruncatedObject(f"tier object is not the size its header declares at {key}", key=key)
    (stored,) = struct.unpack_from("<I", data, len(data) - 4)
    view = memoryview(data)
    if crc32c.crc32c(view[:-4]) != stored:
        raise ChecksumMismatch(f"tier object checksum mismatch at {key}", key=key)
    toc_z = view[offset : offset + toc_size]
    try:
        declared = zstandard.frame_content_size(toc_z)
        if declared < 0 or declared > max_decoded:
            raise OversizedObject(f"tier object table of contents too large at {key}", key=key)
        toc = pydantic_core.from_json(  # half the time of json.loads, the same values
            zstandard.ZstdDecompressor().decompress(toc_z, max_output_size=declared),
            allow_inf_nan=False,
        )
    except (zstandard.ZstdError, ValueError, RecursionError) as exc:
        # ValueError: malformed JSON (bad UTF-8, NaN, nesting too deep included).
        raise CorruptError(
            f"tier object table of contents unreadable at {key}: {exc!r:.200}", key=key
        ) from None
    if not isinstance(toc, dict) or toc.get("tier") != tier:
        raise CorruptError(f"tier object table of contents malformed at {key}", key=key)
    frames = []
    pos = offset + toc_size
    for size in sizes:
        frames.append(data[pos : pos + size])
        pos += size
    return toc, frames


def encode_compressed(
    host: str, snapshots: Sequence[ProfileSnapshot], *, level: int = 19, max_frame_bytes: int
) -> bytes:
    """One group's snapshots (seq order) as a lossless compressed tier object.

    Consecutive snapshots are merged into frames of at most ``max_frame_bytes``
    raw bytes (16 B per sample; at least one snapshot per frame).
    """
    table: dict[tuple[str, str, str], int] = {}
    members: list[dict[str, Any]] = []
    chunks: list[list[int]] = [[]]
    size = 0
    for i, snap in enumerate(snapshots):
        if chunks[-1] and size + snap.raw_bytes > max_frame_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += snap.raw_bytes
        ids = [
            [table.setdefault((m.name, m.kind, m.unit), len(table)), len(m)] for m in snap.metrics
        ]
        members.append(
            {
                "s": snap.seq,
                "fr": len(chunks) - 1,
                "w": [snap.window_start, snap.window_end],
                "f": snap.fingerprint,
                "l": snap.labels,
                "m": snap.metadata,
                "c": snap.checksum,
                "t": ids,
            }
        )
    frames = [_merged_frame(host, [snapshots[i] for i in chunk], table, level) for chunk in chunks]
    toc = {
        "tier": "compressed",
        "host": host,
        "table": [list(k) for k in table],
        "members": members,
    }
    return _pack("compressed", toc, frames, level)


def _merged_frame(
    host: str,
    snaps: Sequence[ProfileSnapshot],
    table: dict[tuple[str, str, str], int],
    level: int,
) -> bytes:
    pieces: dict[int, list[MetricSeries]] = {}
    for snap in snaps:
        for m in snap.metrics:
            pieces.setdefault(table[(m.name, m.kind, m.unit)], []).append(m)
    metrics = tuple(
        MetricSeries.trusted(
            f"m{i}",
            "gauge",
            "",
            np.concatenate([p.timestamps for p in parts]),
            np.concatenate([p.values for p in parts]),
        )
        for i, parts in sorted(pieces.items())
    )
    merged = ProfileSnapshot.trusted(
        host=host,
        seq=snaps[0].seq,
        window_start=min(s.window_start for s in snaps),
        window_end=max(s.window_end for s in snaps),
        fingerprint="",
        labels={},
        metadata={},
        metrics=metrics,
    )
    return codec.encode_keyframe(merged, level=level)


def decode_compressed(
    data: bytes,
    *,
    key: str | None = None,
    max_decoded: int = codec.DEFAULT_MAX_DECODED,
    verify: bool = True,
    seqs: Iterable[int] | None = None,
) -> dict[int, ProfileSnapshot]:
    """The snapshots a compressed tier object holds, bit for bit, by seq.

    With ``seqs``, only the frames holding them are decoded (and every snapshot of
    those frames returned). Raises a ``CorruptError`` subclass for bad bytes or a
    snapshot whose content checksum differs from the one recorded at compaction.
    """
    toc, frames = _unpack(data, "compressed", key=key, max_decoded=max_decoded)
    try:
        host = str(toc["host"])
        table = [(str(n), str(k), str(u)) for n, k, u in toc["table"]]
        members = toc["members"]
        if not isinstance(members, list) or not members:
            raise CorruptError(f"compressed tier object at {key} lists no snapshots", key=key)
        if sorted({m["fr"] for m in members}) != list(range(len(frames))):
            raise CorruptError(
                f"compressed tier object at {key}: members and frames do not match", key=key
            )
        wanted = None if seqs is None else set(seqs)
        need = {m["fr"] for m in members if wanted is None or m["s"] in wanted}
        out: dict[int, ProfileSnapshot] = {}
        for fr in sorted(need):
            merged = codec.decode(frames[fr], max_decoded_size=max_decoded, verify=verify, key=key)
            cutter = _Cutter(host, table, merged, key)
            for mem in members:
                if mem["fr"] != fr:
                    continue
                snap = cutter.cut(mem)
                if verify and cutter.checksum(snap) != mem["c"]:
                    raise ChecksumMismatch(
                        f"snapshot {snap.seq} in {key} does not match its checksum", key=key
                    )
                snap._checksum = int(mem["c"])
                out[snap.seq] = snap
            cutter.finish()
    except CorruptError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CorruptError(f"malformed compressed tier object at {key}: {exc!r}", key=key) from None
    return out


class _Cutter:
    """Cuts one frame's snapshots back out of its merged series, member by member.

    The usual group keeps one metric table and one window length all hour, so each
    member holds every merged series, in table order, over one span: that member is
    a column slice of the merged matrix (``MetricColumns``: no copy, no object per
    metric). From the first member that is not (a metric added or dropped within
    the hour, metrics of several lengths), members are cut metric by metric.
    """

    def __init__(
        self,
        host: str,
        table: list[tuple[str, str, str]],
        merged: ProfileSnapshot,
        key: str | None,
    ) -> None:
        names = merged.metric_names
        # A frame's series are named after their table entries: m{ident}, in order.
        self.idents = [int(name[1:]) for name in names]
        if [f"m{i}" for i in self.idents] != names or len(set(self.idents)) != len(names):
            raise CorruptError(f"merged series misnamed at {key}", key=key)
        self.host, self.table, self.merged, self.key = host, table, merged, key
        cols = merged.columns
        self.columns = cols if cols is not None and names else None
        self.at = 0  # on the column path: where every merged series' next member starts
        # Off it: where each merged series' next member starts (absent: at 0).
        self.offsets: dict[int, int] | None = None if self.columns is not None else {}
        self._arrays: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        self._whole: list[Any] | None = None  # the last member table found whole
        self._checksum_tables: dict[int, bytes] = {}

    def cut(self, mem: dict[str, Any]) -> ProfileSnapshot:
        """The snapshot member ``mem`` describes."""
        pairs = mem["t"]
        columns = self._slice(pairs) if self.offsets is None else None
        start, end = mem["w"]
        return ProfileSnapshot.trusted(
            host=self.host,
            seq=int(mem["s"]),
            window_start=int(start),
            window_end=int(end),
            fingerprint=str(mem["f"]),
            labels=dict(mem["l"]),
            metadata=dict(mem["m"]),
            metrics=None if columns is not None else self._metric_by_metric(pairs),
            columns=columns,
        )

    def checksum(self, snap: ProfileSnapshot) -> int:
        """The content checksum of a snapshot this cutter cut."""
        cols = snap.columns
        if cols is None:
            return content_checksum(snap)
        count, length = cols.shape
        table = self._checksum_tables.get(length)
        if table is None:
            table = self._checksum_tables[length] = metric_table(
                cols.names, cols.kinds, cols.units, [length] * count
            )
        return content_checksum(snap, table=table)

    def finish(self) -> None:
        """Check that the members used up every merged series."""
        if self.offsets is None:
            assert self.columns is not None
            done = self.at == self.columns.values.shape[1]
        else:
            done = all(
                self.offsets.get(i, 0) == m.values.size
                for i, m in zip(self.idents, self.merged.metrics, strict=True)
            )
        if not done:
            raise CorruptError(
                f"merged series longer than their snapshots at {self.key}", key=self.key
            )

    def _slice(self, pairs: list[Any]) -> MetricColumns | None:
        """Member ``pairs`` as a column slice, or None: then it and every member after
        it are cut metric by metric, each series going on from where it stands."""
        cols = self.columns
        assert cols is not None
        idents = self.idents
        if pairs == self._whole or (
            len(pairs) == len(idents)
            and type(pairs[0][1]) is int
            and all(p[0] == i and p[1] == pairs[0][1] for i, p in zip(idents, pairs, strict=True))
        ):
            lo, hi = self.at, self.at + pairs[0][1]
            if lo <= hi <= cols.values.shape[1]:
                self._whole, self.at = pairs, hi
                names, kinds, units = self._heads
                return MetricColumns(
                    names, kinds, units, cols.timestamps[lo:hi], cols.values[:, lo:hi]
                )
        self.offsets = dict.fromkeys(idents, self.at)
        return None

    @functools.cached_property
    def _heads(self) -> tuple[list[str], list[str], list[str]]:
        """Names, kinds and units of the merged series, in order (for whole members)."""
        rows = [self.table[i] for i in self.idents]
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def _metric_by_metric(self, pairs: list[Any]) -> tuple[MetricSeries, ...]:
        """Member ``pairs`` cut metric by metric, advancing ``offsets``."""
        offsets = self.offsets
        assert offsets is not None
        if not self._arrays:
            self._arrays = {
                i: (m.timestamps, m.values)
                for i, m in zip(self.idents, self.merged.metrics, strict=True)
            }
        metrics: list[MetricSeries] = []
        for ident, length in pairs:
            name, kind, unit = self.table[ident]
            ts, vs = self._arrays[ident]
            lo = offsets.get(ident, 0)
            hi = lo + length
            if length < 0 or hi > vs.size:
                raise CorruptError(
                    f"merged series shorter than its snapshots at {self.key}", key=self.key
                )
            offsets[ident] = hi
            metrics.append(MetricSeries.trusted(name, kind, unit, ts[lo:hi], vs[lo:hi]))
        return tuple(metrics)


def encode_archive(
    host: str,
    frames: Sequence[tuple[int, ProfileSnapshot]],
    groups: Sequence[tuple[int, int]],
    *,
    level: int = 19,
) -> bytes:
    """Aggregate snapshots ``(resolution_ns, snapshot)`` as one archive tier object."""
    toc = {
        "tier": "archive",
        "host": host,
        "groups": [list(g) for g in groups],
        "frames": [{"resolution_ns": r, "seq": s.seq, "checksum": s.checksum} for r, s in frames],
    }
    return _pack("archive", toc, [codec.encode_keyframe(s, level=level) for _, s in frames], level)


def decode_archive(
    data: bytes,
    *,
    key: str | None = None,
    max_decoded: int = codec.DEFAULT_MAX_DECODED,
    verify: bool = True,
    only: Iterable[int] | None = None,
) -> list[tuple[int, ProfileSnapshot]]:
    """``(resolution_ns, snapshot)`` of every frame (or of the frame indices in ``only``)."""
    toc, frames = _unpack(data, "archive", key=key, max_decoded=max_decoded)
    try:
        info = toc["frames"]
        if len(info) != len(frames):
            raise CorruptError(f"archive object at {key} lists {len(info)} frames", key=key)
        picks = range(len(frames)) if only is None else sorted(set(only))
        out = []
        for i in picks:
            snap = codec.decode(frames[i], max_decoded_size=max_decoded, verify=verify, key=key)
            resolution, seq, checksum = (info[i][f] for f in ("resolution_ns", "seq", "checksum"))
            # The table must agree with the frame it describes (bool is an int: refuse it).
            if (
                any(type(v) is not int for v in (resolution, seq, checksum))
                or resolution <= 0
                or seq != snap.seq
                or checksum != snap.checksum
                or snap.metadata.get(META_RESOLUTION) not in (None, resolution)
            ):
                raise CorruptError(
                    f"archive object at {key}: table entry {i} disagrees with its frame", key=key
                )
            out.append((resolution, snap))
        return out
    except CorruptError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CorruptError(f"malformed archive tier object at {key}: {exc!r}", key=key) from None
