"""Index segments (one JSON per keyframe group) and the object key layout."""

from __future__ import annotations

from snapcloud.index._segment import (
    SEGMENT_VERSION,
    IndexEntry,
    IndexSegment,
    ObjectKey,
    data_key,
    parse_data_key,
    segment_key,
    segment_prefix,
)

__all__ = [
    "SEGMENT_VERSION",
    "IndexEntry",
    "IndexSegment",
    "ObjectKey",
    "data_key",
    "parse_data_key",
    "segment_key",
    "segment_prefix",
]
