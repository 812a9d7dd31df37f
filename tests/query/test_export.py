"""Parquet export: Hive partitions by host and UTC date, bounded files, any store as dest."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from snapcloud.backends import MemoryStore
from snapcloud.errors import ValidationError
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.query import Selector, export_parquet, format_result, run_query
from snapcloud.store import Repository

DAY = 86_400 * 10**9
NOON = 1_767_225_600 * 10**9 - 300 * 10**9  # 2025-12-31T23:55:00Z


def _repo() -> Repository:
    repo = Repository(MemoryStore())
    stream = repo.stream("node-a", create=True)
    for w in range(10):  # one-minute windows across midnight
        ts = NOON + (w * 60 + np.arange(60, dtype=np.int64)) * 10**9
        vals = np.where(np.arange(60) % 9 == 0, np.nan, w * 100.0 + np.arange(60))
        stream.append(
            ProfileSnapshot(
                "node-a",
                [
                    MetricSeries("power", ts, vals, unit="W"),
                    MetricSeries("energy", ts, np.cumsum(np.ones(60)) + 60 * w, kind="counter"),
                ],
                fingerprint="job-1" if w < 5 else "job-2",
                labels={"site": "x"},
            )
        )
    return repo


def test_partitions_by_utc_date_and_splits_files(tmp_path: Path) -> None:
    repo = _repo()
    report = export_parquet(repo, Selector(), str(tmp_path), max_rows_per_file=200)
    assert report.rows == 10 * 60 * 2
    dates = sorted({f.split("/")[1] for f in report.files})
    assert dates == ["date=2025-12-31", "date=2026-01-01"]
    assert len(report.files) > 2  # 200-row flushes: part-1, part-2 ...
    assert all((tmp_path / f).is_file() for f in report.files)
    table = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == report.rows
    ts = table.column("timestamp").cast("int64").to_numpy()
    date = np.array(table.column("date").to_pylist())
    assert set(date[ts < NOON + 300 * 10**9]) == {"2025-12-31"}
    assert set(date[ts >= NOON + 300 * 10**9]) == {"2026-01-01"}
    assert set(table.column("fingerprint").to_pylist()) == {"job-1", "job-2"}
    power = table.filter(ds.field("metric") == "power").sort_by("timestamp")
    idx = np.arange(60)
    want = np.concatenate([np.where(idx % 9 == 0, np.nan, w * 100.0 + idx) for w in range(10)])
    assert power.column("value").to_numpy().tobytes() == want.tobytes()
    assert set(power.column("unit").to_pylist()) == {"W"}


def test_dest_may_be_any_store_and_must_be_usable(tmp_path: Path) -> None:
    repo = _repo()
    report = export_parquet(repo, Selector(metrics=("energy",)), "memory://export-test")
    store = MemoryStore.named("export-test")
    keys = sorted(i.key for i in store.list(""))
    assert keys == sorted([*report.files, "_SUCCESS"]) and len(report.files) == 2
    table = pq.read_table(io.BytesIO(store.get(report.files[0]).data))
    assert set(table.column("kind").to_pylist()) == {"counter"}
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValidationError, match="not a directory"):
        export_parquet(repo, Selector(), str(tmp_path / "file"))
    with pytest.raises(ValidationError, match="absolute"):
        export_parquet(repo, Selector(), "file://relative/dir")


def test_result_formats_round_trip() -> None:
    repo = _repo()
    result = run_query(repo, Selector(), aggs=("mean", "count", "increase"), group_by=("host",))
    csv_text = format_result(result, "csv").decode()
    assert csv_text.splitlines()[0] == "host,metric,unit,kind,mean,count,increase"
    assert "node-a,power,W,gauge," in csv_text and csv_text.rstrip().endswith(",")
    table = pq.read_table(io.BytesIO(format_result(result, "parquet")))
    assert table.column("mean").to_pylist() == result.column("mean")
    with pytest.raises(ValidationError):
        format_result(result, "xml")
    energy = result.records()[0]
    assert energy["metric"] == "energy" and energy["increase"] == 10 * 60 - 1
