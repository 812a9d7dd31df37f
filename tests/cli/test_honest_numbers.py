"""Honest numbers after compaction: snapshots counted by tier (a compressed snapshot is no
keyframe), the catalog refreshed by the compactor, and index and catalog bytes counted
in what a host stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapcloud.backends import open_store
from snapcloud.cli import main
from snapcloud.index import catalog_key
from snapcloud.retention import Compactor
from snapcloud.store import Repository
from tests.retention.scenario import CONFIG, HOUR, T0, write_host

HOST = "gpu-a"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def compacted(tmp_path: Path) -> str:
    """12 one-hour windows in groups of 4; the oldest two groups compressed, their raw
    objects deleted after the deletion delay."""
    url = f"file://{tmp_path / 'store'}"
    objects = open_store(url)
    write_host(objects, HOST, 12)
    Repository(objects, CONFIG).refresh_catalog(HOST)  # the catalog as an import leaves it
    Compactor(objects, CONFIG).run(T0 + 12 * HOUR + 8 * HOUR)
    Compactor(objects, CONFIG).run(T0 + 12 * HOUR + 10 * HOUR)  # retired raw objects deleted
    return url


def test_stream_stats_count_by_tier_and_index_bytes(compacted: str) -> None:
    objects = open_store(compacted)
    stream = Repository(objects, CONFIG).stream(HOST)
    st = stream.stats()
    tiers = {e.key.split("/", 1)[0] for e in stream.entries()}
    assert tiers == {"compressed", "raw"}
    assert st.tiers == {"compressed": 8, "raw": 4}
    assert st.keyframes == 1 and st.deltas == 3  # the raw group; compressed ones are neither
    assert st.snapshots == 12
    assert st.index_bytes == sum(i.size for i in objects.list(f"index/{HOST}/")) > 0
    assert st.catalog_bytes == objects.head(catalog_key(HOST)).size > 0  # type: ignore[union-attr]
    data = sum(i.size for i in objects.list(f"raw/{HOST}/")) + sum(
        i.size for i in objects.list(f"compressed/{HOST}/")
    )
    assert st.stored_bytes == data
    assert st.total_bytes == data + st.index_bytes + st.catalog_bytes


def test_stats_and_ls_show_tiers_and_index_bytes(
    capsys: pytest.CaptureFixture[str], compacted: str
) -> None:
    """Was: compressed snapshots counted as keyframes, index objects left out of 'stored'."""
    code, out, err = run(capsys, "stats", "--store", compacted, "--json")
    assert code == 0, err
    (row,) = json.loads(out)["hosts"]
    assert row["keyframes"] == 1 and row["tiers"] == {"compressed": 8, "raw": 4}
    assert row["index_bytes"] > 0 and row["catalog_bytes"] > 0
    assert row["stored_bytes"] == row["data_bytes"] + row["index_bytes"] + row["catalog_bytes"]
    code, out, _ = run(capsys, "stats", "--store", compacted)
    assert "compressed" in out and "index" in out
    code, out, _ = run(capsys, "ls", "--store", compacted, "--json")
    (row,) = json.loads(out)
    assert row["tiers"] == {"compressed": 8, "raw": 4}
    code, out, _ = run(capsys, "ls", "--host", HOST, "--store", compacted)
    assert out.count("compressed") >= 8


def test_the_compactor_refreshes_the_catalog(
    capsys: pytest.CaptureFixture[str], compacted: str
) -> None:
    """Was: 'hosts' showed the raw tier only until 'hosts --refresh'."""
    code, out, err = run(capsys, "hosts", "--store", compacted, "--json")
    assert code == 0, err
    (entry,) = json.loads(out)["hosts"]
    assert {t: s["snapshots"] for t, s in entry["tiers"].items()} == {"compressed": 8, "raw": 4}
    assert entry["tiers"]["compressed"]["keyframes"] == 0
    assert entry["tiers"]["raw"]["keyframes"] == 1
