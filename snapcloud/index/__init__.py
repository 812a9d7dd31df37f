"""Index segments (one JSON per keyframe group), tier index segments, the fleet catalog.

The keys they live under are ``snapcloud.layout``'s; its key builders and parsers
are re-exported here under the names they have always had here.
"""

from __future__ import annotations

from snapcloud.index._catalog import (
    CATALOG_VERSION,
    Catalog,
    CatalogEntry,
    TierStats,
    entry_from_index,
    entry_from_segments,
)
from snapcloud.index._segment import SEGMENT_VERSION, IndexEntry, IndexSegment
from snapcloud.index._tier_segment import TierSegment
from snapcloud.layout import (
    CATALOG_PREFIX,
    ObjectKey,
    RangeHint,
    TierItem,
    catalog_key,
    data_key,
    parse_data_key,
    parse_range_hint,
    range_hint_key,
    segment_key,
    segment_prefix,
)

__all__ = [
    "CATALOG_PREFIX",
    "CATALOG_VERSION",
    "SEGMENT_VERSION",
    "Catalog",
    "CatalogEntry",
    "IndexEntry",
    "IndexSegment",
    "ObjectKey",
    "RangeHint",
    "TierItem",
    "TierSegment",
    "TierStats",
    "catalog_key",
    "data_key",
    "entry_from_index",
    "entry_from_segments",
    "parse_data_key",
    "parse_range_hint",
    "range_hint_key",
    "segment_key",
    "segment_prefix",
]
