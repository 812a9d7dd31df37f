"""The object layout: the README's key table is the module's, and every key parses back."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import snapcloud.layout as layout

README = Path(__file__).resolve().parents[1] / "README.md"
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def _docstring_table() -> str:
    doc = layout.__doc__ or ""
    start = doc.index("::\n\n") + 4
    return textwrap.dedent(doc[start : doc.index("\n\n", start)])


def _readme_table() -> str:
    text = README.read_text()
    section = text[text.index("## Object layout") :]
    m = re.search(r"```\n(.*?)\n```", section, re.S)
    assert m is not None
    return m.group(1)


def test_the_readme_key_table_is_the_layout_docstring() -> None:
    assert _readme_table() == _docstring_table()


def _pattern(row: str) -> re.Pattern[str]:
    """A table row's key template as a regex: each ``{field}`` stands for one path-free run."""
    template = row.split()[0]
    parts = re.split(r"\{[^}]*\}", template)
    return re.compile("[^/]+?".join(re.escape(p) for p in parts))


def test_every_key_a_builder_makes_is_a_row_of_the_table_and_parses_back() -> None:
    rows = [_pattern(r) for r in _docstring_table().splitlines()]
    host = "gpu-node-7"
    keys = {
        "keyframe": layout.data_key(host, 60, 60, T0, 0xDEADBEEF),
        "delta": layout.data_key(host, 61, 60, T0, 0x0BADF00D),
        "segment": layout.segment_key(host, 60),
        "hint": layout.range_hint_key(host, 60, T0, T0 + 10**9, '"0f1e2d"'),
        "compressed": layout.tier_data_key("compressed", host, 0, 59, T0),
        "archive": layout.tier_data_key("archive", host, 0, 179, T0),
        "tier index": layout.tier_index_key("archive", host, 0, 179, T0, T0 + 1),
        "mark": layout.mark_key(host, "raw", 0, 59),
        "orphans": layout.orphan_mark_key(host, T0),
        "conflict": layout.conflict_key(host, 61),
        "lease": layout.lease_key(host),
        "compactor": layout.COMPACTOR_LEASE_KEY,
        "catalog": layout.catalog_key(host),
        "policy": layout.POLICY_KEY,
    }
    for what, key in keys.items():
        assert key is not None
        assert any(p.fullmatch(key) for p in rows), (what, key)

    k = layout.parse_data_key(keys["delta"])
    assert k is not None and (k.host, k.seq, k.base, k.checksum) == (host, 61, 60, 0x0BADF00D)
    assert layout.parse_segment_name(keys["segment"].rsplit("/", 1)[1]) == 60
    hint = layout.parse_range_hint(str(keys["hint"]).rsplit("/", 1)[1])
    assert hint == layout.RangeHint(60, T0, T0 + 10**9, "0f1e2d")
    assert layout.parse_tier_data_key(keys["archive"]) == ("archive", host, 0, 179)
    item = layout.parse_tier_index_key(keys["tier index"], host, "archive")
    assert item == layout.TierItem("archive", 0, 179, T0, T0 + 1, keys["tier index"])
    assert layout.parse_mark_key(keys["mark"], host) == ("raw", 0, 59)
    assert layout.parse_mark_key(keys["orphans"], host) is None
    assert layout.conflict_seq(keys["conflict"], host) == 61
    assert [layout.tier_of_key(keys[t]) for t in ("delta", "compressed", "archive")] == list(
        layout.TIERS
    )
    assert layout.names_content(keys["keyframe"])
    assert not layout.names_content(keys["compressed"])


def test_listing_prefixes_hold_the_keys_they_list() -> None:
    host = "h"
    assert layout.data_key(host, 0, 0, T0, 1).startswith(layout.tier_data_prefix("raw", host))
    assert layout.segment_key(host, 0).startswith(layout.host_index_prefix(host))
    assert layout.tier_index_key("compressed", host, 0, 1, 2, 3).startswith(
        layout.tier_index_prefix("compressed", host)
    )
    assert layout.conflict_key(host, 0).startswith(layout.host_marks_prefix(host))
    assert layout.lease_key(host).startswith(layout.LEASES_PREFIX)
    assert layout.catalog_key(host).startswith(layout.CATALOG_PREFIX)
    # a start outside 1970..9999 files under 0000/00/00 (both tiers, one rule)
    assert "/0000/00/00/" in layout.data_key(host, 0, 0, -1, 1)
    assert "/0000/00/00/" in layout.tier_data_key("archive", host, 0, 1, 10**22)
