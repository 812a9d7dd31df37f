"""Samples as a multiset: what of a window a stream does not hold yet.

A sample's identity is its metric, its timestamp and its value's bits, with
multiplicity: a file that has a row twice holds that sample twice, and a stream
that holds it once still lacks one. Identical samples cannot be told apart, so
which of the equal ones are kept does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from snapcloud.models import MetricSeries, ProfileSnapshot

__all__ = ["unseen"]

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


def unseen(snap: ProfileSnapshot, stored: Sequence[ProfileSnapshot]) -> ProfileSnapshot | None:
    """``snap`` without the samples ``stored`` snapshots already hold (inside ``snap``'s
    window, same metric, timestamp and value bits, counted with multiplicity); ``None``
    when nothing is left. Metrics left without samples are dropped; the rest keep their
    order, which stays time order."""
    held: dict[str, list[MetricSeries]] = {}
    for s in stored:
        for m in s.metrics:
            held.setdefault(m.name, []).append(m)
    kept: list[MetricSeries] = []
    for m in snap.metrics:
        parts = held.get(m.name)
        if not parts:
            kept.append(m)
            continue
        keep = _not_in(m, parts, snap.window_start, snap.window_end)
        if keep.all():
            kept.append(m)
        elif keep.any():
            kept.append(
                MetricSeries.trusted(m.name, m.kind, m.unit, m.timestamps[keep], m.values[keep])
            )
    if not any(len(m) for m in kept):
        return None
    same = len(kept) == len(snap.metrics)
    if same and all(a is b for a, b in zip(kept, snap.metrics, strict=True)):
        return snap
    return snap.with_metrics(kept)


def _not_in(m: MetricSeries, parts: list[MetricSeries], start: int, end: int) -> Mask:
    """Which samples of ``m`` are beyond the multiset ``parts`` hold in ``[start, end)``."""
    ts = [p.timestamps for p in parts]
    bits = [p.values.view(np.int64) for p in parts]
    held_ts = np.concatenate(ts)
    held_bits = np.concatenate(bits)
    inside = (held_ts >= start) & (held_ts < end)
    held_ts, held_bits = held_ts[inside], held_bits[inside]
    n = len(m)
    if not held_ts.size:
        return np.ones(n, dtype=bool)
    pairs = np.stack(
        [
            np.concatenate([m.timestamps, held_ts]),
            np.concatenate([m.values.view(np.int64), held_bits]),
        ],
        axis=1,
    )
    _, inverse = np.unique(pairs, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    mine, theirs = inverse[:n], inverse[n:]
    stored_count = np.bincount(theirs, minlength=int(inverse.max()) + 1)
    # the k-th copy of a sample in the file is new once the stream holds fewer than k+1
    order = np.argsort(mine, kind="stable")
    ranked = mine[order]
    starts = np.flatnonzero(np.append(True, ranked[1:] != ranked[:-1]))
    run = np.repeat(starts, np.diff(np.append(starts, n)))
    copy = np.empty(n, dtype=np.int64)
    copy[order] = np.arange(n) - run
    keep: Mask = copy >= stored_count[mine]
    return keep
