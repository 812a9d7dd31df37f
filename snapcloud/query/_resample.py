"""Series with more points than a plot has pixel columns, cut down to one bucket per column.

A bucket keeps the minimum, the maximum and the mean of its samples, so a drawing of
the buckets shows every column's extremes (a spike is never averaged away) and a
readable level line instead of the solid block a million points draw. Buckets are
whole nanoseconds wide, ``ceil(span / columns)``, starting at ``start``: integer
arithmetic, so a sample on a bucket edge always lands in the same bucket. NaN samples
are skipped; a bucket of NaNs only is NaN (a gap in the drawn line).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from snapcloud.errors import ValidationError

__all__ = ["Envelope", "bucket_width", "envelope"]


@dataclass(frozen=True)
class Envelope:
    """Per non-empty bucket: its middle time (ns), min, max, mean and sample count."""

    times: npt.NDArray[np.int64]
    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    count: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.times.size)


def bucket_width(start_ns: int, end_ns: int, columns: int) -> int:
    """The bucket width in ns that splits ``[start_ns, end_ns]`` into at most ``columns``.

    Raises ``ValidationError`` for fewer than one column or an end before the start.
    """
    if columns < 1 or end_ns < start_ns:
        raise ValidationError(
            f"envelope: need columns >= 1 and end >= start (got {columns}, {start_ns}, {end_ns})",
            field="columns",
        )
    span = end_ns - start_ns + 1  # the end is drawn too
    return max(1, -(-span // columns))


def envelope(
    timestamps: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    start_ns: int,
    end_ns: int,
    columns: int,
) -> Envelope:
    """Bucket ``values`` (timestamps in order, within ``[start_ns, end_ns]``) into at most
    ``columns`` equal time buckets; empty buckets are left out.

    Raises ``ValidationError`` for unordered timestamps, timestamps outside the range or
    arrays of different lengths.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    vs = np.asarray(values, dtype=np.float64)
    if ts.shape != vs.shape or ts.ndim != 1:
        raise ValidationError("envelope: timestamps and values differ in shape", field="values")
    width = bucket_width(start_ns, end_ns, columns)
    if ts.size == 0:
        empty_f = np.empty(0, dtype=np.float64)
        return Envelope(np.empty(0, dtype=np.int64), empty_f, empty_f, empty_f, ts.copy())
    if ts[0] < start_ns or ts[-1] > end_ns or (ts.size > 1 and np.any(np.diff(ts) < 0)):
        raise ValidationError("envelope: timestamps out of order or out of range", field="time")
    bucket = (ts - start_ns) // width
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    finite = ~np.isnan(vs)
    count = np.add.reduceat(finite.astype(np.int64), starts)
    total = np.add.reduceat(np.where(finite, vs, 0.0), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return Envelope(
        times=start_ns + bucket[starts] * width + width // 2,
        low=np.fmin.reduceat(vs, starts),
        high=np.fmax.reduceat(vs, starts),
        mean=mean,
        count=count,
    )
