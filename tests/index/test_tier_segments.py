"""Tier segments (index/_tier_segment.py), tier keys (layout.py) and the supersession
rule (store/_tiers.py)."""

from __future__ import annotations

import pytest

from snapcloud.errors import ChecksumMismatch
from snapcloud.index import TierSegment
from snapcloud.layout import (
    TierItem,
    mark_key,
    parse_mark_key,
    parse_tier_data_key,
    parse_tier_index_key,
    tier_data_key,
    tier_index_key,
)
from snapcloud.store import TierView
from tests.retention.scenario import T0
from tests.retention.test_format import _awkward_group


def test_tier_segment_round_trip_and_checksum() -> None:
    group = _awkward_group()
    seg = TierSegment.build(
        host="h",
        tier="compressed",
        key="compressed/h/2026/01/01/000000000010-000000000014.snapt",
        object_bytes=1000,
        groups=[(10, 14)],
        source_snapshots=5,
        source_samples=sum(s.sample_count for s in group),
        created_ns=5,
        rows=[(s, 200, 0) for s in group],
        window=(min(s.window_start for s in group), max(s.window_end for s in group)),
    )
    back = TierSegment.from_bytes(seg.to_bytes(), key="x")
    assert back == seg
    assert [e.seq for e in back.entries] == [10, 11, 12, 13, 14]
    assert back.metric_names(back.entries[1]) == ["a", "empty"]
    assert back.entries[2].checksum == group[2].checksum
    assert all(e.kind == "k" and e.base == e.seq for e in back.entries)
    assert back.finest() == back.entries
    data = bytearray(seg.to_bytes())
    data[data.index(b'"host":"h"') + 8] = ord("x")
    with pytest.raises(ChecksumMismatch):
        TierSegment.from_bytes(bytes(data))


def test_keys_parse_back() -> None:
    key = tier_data_key("archive", "gpu-1", 4, 99, T0)
    assert key == "archive/gpu-1/2026/01/01/000000000004-000000000099.snapt"
    assert parse_tier_data_key(key) == ("archive", "gpu-1", 4, 99)
    assert parse_tier_data_key("raw/gpu-1/2026/01/01/000000000004.k.snap") is None
    ikey = tier_index_key("compressed", "gpu-1", 4, 7, -5, 10)
    item = parse_tier_index_key(ikey, "gpu-1", "compressed")
    assert item == TierItem("compressed", 4, 7, -5, 10, ikey)
    assert parse_tier_index_key(ikey, "gpu-2", "compressed") is None
    assert parse_mark_key(mark_key("gpu-1", "raw", 4, 7), "gpu-1") == ("raw", 4, 7)
    assert (
        parse_mark_key("marks/deletions/gpu-1/orphans-00000000000000000001.json", "gpu-1") is None
    )


def _item(tier: str, first: int, last: int) -> TierItem:
    return TierItem(tier, first, last, 0, 1, f"index/h/{tier}/{first}")  # type: ignore[arg-type]


def test_supersession_rule() -> None:
    view = TierView(
        marked=frozenset({("compressed", 8), ("raw", 12)}),
        compressed=(
            _item("compressed", 0, 3),
            _item("compressed", 4, 7),
            _item("compressed", 8, 11),
        ),
        archive=(_item("archive", 4, 11),),
    )
    served = [(s.tier, s.first) for s in view.serving([0, 4, 8, 12, 16])]
    # archive beats compressed beats raw; a marked item is invisible.
    assert served == [("compressed", 0), ("archive", 4), ("raw", 16)]
    unmarked_archive = TierView(frozenset({("archive", 4)}), view.compressed, view.archive)
    served = [(s.tier, s.first) for s in unmarked_archive.serving([0, 4, 8, 12])]
    assert served == [("compressed", 0), ("compressed", 4), ("compressed", 8), ("raw", 12)]
