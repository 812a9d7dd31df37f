"""Reading one object an index names: its bytes, then the snapshot checked against the
entry, then the snapshot cut to what a query selected.

The stream (``get``, ``query``), the tier reader and fleet queries all read this way;
fleet queries fetch on a pool and decode in order, hence the halves. ``trim`` is the one
cut both stream and fleet queries hand out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from snapcloud import codec
from snapcloud.backends import ObjectStore
from snapcloud.errors import ChecksumMismatch, ObjectNotFound
from snapcloud.index import IndexEntry
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig

__all__ = ["decode_entry", "fetch_entry", "trim"]


def fetch_entry(objects: ObjectStore, host: str, entry: IndexEntry, named_by: str) -> bytes:
    """The bytes of the object ``entry`` names. Raises ``ObjectNotFound`` saying which
    index (``named_by``, e.g. ``"index entry 7"``) names the missing object."""
    try:
        return objects.get(entry.key).data
    except ObjectNotFound:
        raise ObjectNotFound(
            f"{named_by} of host {host!r} names missing object {entry.key}",
            key=entry.key,
            host=host,
            seq=entry.seq,
        ) from None


def decode_entry(
    config: SnapshotConfig,
    host: str,
    entry: IndexEntry,
    data: bytes,
    base: ProfileSnapshot | None,
    metrics: Collection[str] | None = None,
) -> ProfileSnapshot:
    """Decode a raw-tier object (``metrics``: only those, see ``codec.decode``) and check
    that it holds what its index entry says: host, seq and the content checksum the
    object was written with. Raises ``ChecksumMismatch`` or another ``CorruptError``."""
    decoded = codec.decode_object(
        data,
        base=base,
        max_decoded_size=config.max_decoded_bytes,
        verify=config.verify_checksums,
        key=entry.key,
        metrics=metrics,
    )
    snap = decoded.snapshot
    if decoded.stored_checksum != entry.checksum or snap.seq != entry.seq or snap.host != host:
        raise ChecksumMismatch(
            f"object {entry.key} does not hold what its index entry says", key=entry.key
        )
    return snap


def trim(
    snap: ProfileSnapshot,
    metrics: Collection[str] | None,
    start_ns: int | None,
    end_ns: int | None,
    *,
    bucket_ns: int | None = None,
) -> ProfileSnapshot:
    """``snap`` with only the metrics named in ``metrics`` (``None``: every one), each
    sliced to ``[start_ns, end_ns)``; ``snap`` itself when nothing is cut. Columns stay
    columns (no object per metric), metric objects stay metric objects.

    ``bucket_ns``: ``snap`` is a downsampled (archive) snapshot of buckets that wide;
    its series ``name:agg`` are selected by ``name``, and a bucket (stamped with its
    start) is kept when it overlaps the range.
    """
    if bucket_ns is not None and start_ns is not None:
        start_ns -= bucket_ns - 1
    rows = _selected_rows(snap.metric_names, metrics, by_source=bucket_ns is not None)
    cols = snap.columns
    if cols is not None:
        sliced = (cols if rows is None else cols.take(rows)).slice_time(start_ns, end_ns)
        return snap if sliced is cols else snap.with_columns(sliced)
    every = snap.metrics
    kept = every if rows is None else [every[i] for i in rows]
    if not _all_inside(kept, start_ns, end_ns):
        kept = [m.slice_time(start_ns, end_ns) for m in kept]
    return snap if kept is every else snap.with_metrics(kept)


def _all_inside(metrics: Sequence[MetricSeries], start_ns: int | None, end_ns: int | None) -> bool:
    """Whether every sample of ``metrics`` lies in ``[start_ns, end_ns)``: each distinct
    timestamp array checked once by its ends (a decoded snapshot's metrics share their
    time group's), where slicing would search every metric's."""
    if start_ns is None and end_ns is None:
        return True
    arrays = {id(m.timestamps): m.timestamps for m in metrics}.values()
    return all(
        ts.size == 0
        or ((start_ns is None or ts[0] >= start_ns) and (end_ns is None or ts[-1] < end_ns))
        for ts in arrays
    )


def _selected_rows(
    names: Sequence[str], metrics: Collection[str] | None, *, by_source: bool
) -> list[int] | None:
    """The positions of the selected metrics, ``None`` when every metric is (``by_source``:
    an archive series ``name:agg`` is selected by ``name``)."""
    if metrics is None:
        return None
    wanted = metrics if isinstance(metrics, set | frozenset) else set(metrics)
    keys = [name.rpartition(":")[0] or name for name in names] if by_source else names
    if wanted.issuperset(keys):
        return None
    return [i for i, key in enumerate(keys) if key in wanted]
