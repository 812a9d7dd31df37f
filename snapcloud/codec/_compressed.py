"""The compressed tier format: one keyframe group, lossless, in a tier object (``_tier_container``).

A compressed object holds its group as *merged* frames: each distinct metric
(name, kind, unit) of the group becomes one series, the group's windows
concatenated, encoded once by the codec (so its transforms and zstd see the
whole hour, not one minute). The table of contents keeps each snapshot's facts
and the length of each of its metrics, so every snapshot is cut back out bit
for bit and checked against its content checksum.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from snapcloud.codec._snapshot import DEFAULT_MAX_DECODED, decode, encode_keyframe
from snapcloud.codec._tier_container import pack_tier_object, unpack_tier_object
from snapcloud.errors import ChecksumMismatch, CorruptError
from snapcloud.models import (
    MetricColumns,
    MetricSeries,
    ProfileSnapshot,
    content_checksum,
    metric_table,
)

__all__ = ["decode_compressed", "encode_compressed"]


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
    return pack_tier_object("compressed", toc, frames, level)


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
    return encode_keyframe(merged, level=level)


def decode_compressed(
    data: bytes,
    *,
    key: str | None = None,
    max_decoded: int = DEFAULT_MAX_DECODED,
    verify: bool = True,
    seqs: Iterable[int] | None = None,
) -> dict[int, ProfileSnapshot]:
    """The snapshots a compressed tier object holds, bit for bit, by seq.

    With ``seqs``, only the frames holding them are decoded (and every snapshot of
    those frames returned). Raises a ``CorruptError`` subclass for bad bytes or a
    snapshot whose content checksum differs from the one recorded at compaction.
    """
    toc, frames = unpack_tier_object(data, "compressed", key=key, max_decoded=max_decoded)
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
            merged = decode(frames[fr], max_decoded_size=max_decoded, verify=verify, key=key)
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
