"""Index segments (one JSON per keyframe group), the fleet catalog, and the key layout."""

from __future__ import annotations

from snapcloud.index._catalog import (
    CATALOG_PREFIX,
    CATALOG_VERSION,
    Catalog,
    CatalogEntry,
    TierStats,
    catalog_key,
    entry_from_index,
    entry_from_segments,
)
from snapcloud.index._segment import (
    SEGMENT_VERSION,
    IndexEntry,
    IndexSegment,
    ObjectKey,
    RangeHint,
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
