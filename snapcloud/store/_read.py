"""Reading one object an index names: its bytes, then the snapshot checked against the entry.

The stream (``get``, ``query``), the tier reader and fleet queries all read this way;
fleet queries fetch on a pool and decode in order, hence the two halves.
"""

from __future__ import annotations

from collections.abc import Collection

from snapcloud import codec
from snapcloud.backends import ObjectStore
from snapcloud.errors import ChecksumMismatch, ObjectNotFound
from snapcloud.index import IndexEntry
from snapcloud.models import ProfileSnapshot, SnapshotConfig

__all__ = ["decode_entry", "fetch_entry"]


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
    snap = codec.decode(
        data,
        base=base,
        max_decoded_size=config.max_decoded_bytes,
        verify=config.verify_checksums,
        key=entry.key,
        metrics=metrics,
    )
    stored = snap._cache.get("stored_checksum")
    if stored != entry.checksum or snap.seq != entry.seq or snap.host != host:
        raise ChecksumMismatch(
            f"object {entry.key} does not hold what its index entry says", key=entry.key
        )
    return snap
