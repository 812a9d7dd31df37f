"""The archive tier format: downsampled aggregate snapshots in a tier object (``_tier_container``).

An archive object holds one aggregate snapshot per (resolution, fingerprint) of a
run of keyframe groups; its metrics are named ``{metric}:{aggregate}``
(``archive_snapshot_names``) and its metadata says ``snapcloud.tier`` and
``snapcloud.resolution_ns`` (``META_TIER``, ``META_RESOLUTION``). The table of
contents lists the groups it covers and each frame's resolution, seq and checksum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from snapcloud.codec._snapshot import DEFAULT_MAX_DECODED, decode, encode_keyframe
from snapcloud.codec._tier_container import pack_tier_object, unpack_tier_object
from snapcloud.errors import CorruptError
from snapcloud.models import ProfileSnapshot

__all__ = [
    "META_RESOLUTION",
    "META_TIER",
    "archive_snapshot_names",
    "decode_archive",
    "encode_archive",
    "resolution_of",
]

META_TIER = "snapcloud.tier"
META_RESOLUTION = "snapcloud.resolution_ns"


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
    return pack_tier_object(
        "archive", toc, [encode_keyframe(s, level=level) for _, s in frames], level
    )


def decode_archive(
    data: bytes,
    *,
    key: str | None = None,
    max_decoded: int = DEFAULT_MAX_DECODED,
    verify: bool = True,
    only: Iterable[int] | None = None,
) -> list[tuple[int, ProfileSnapshot]]:
    """``(resolution_ns, snapshot)`` of every frame (or of the frame indices in ``only``)."""
    toc, frames = unpack_tier_object(data, "archive", key=key, max_decoded=max_decoded)
    try:
        info = toc["frames"]
        if len(info) != len(frames):
            raise CorruptError(f"archive object at {key} lists {len(info)} frames", key=key)
        picks = range(len(frames)) if only is None else sorted(set(only))
        out = []
        for i in picks:
            snap = decode(frames[i], max_decoded_size=max_decoded, verify=verify, key=key)
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
