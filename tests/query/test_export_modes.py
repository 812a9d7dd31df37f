"""Exports you can trust: no silent overwrite or mix (``mode`` error|overwrite|append, as
Spark's), a ``_SUCCESS`` marker written last, a killed export detectably incomplete and a
rerun that converges, a ``gpu`` column; read back by pyarrow and DuckDB."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from snapcloud.backends import MemoryStore
from snapcloud.errors import ValidationError
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.query import Selector, export_parquet
from snapcloud.store import Repository

ROOT = Path(__file__).resolve().parents[2]
S = 10**9
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
duckdb = pytest.importorskip("duckdb")


def fleet() -> Repository:
    """One host, 3 one-minute windows: GPU 0 and 1 power, CPU load; 180 rows a metric."""
    repo = Repository(MemoryStore())
    stream = repo.stream("node-a", create=True)
    for w in range(3):
        ts = T0 + (w * 60 + np.arange(60, dtype=np.int64)) * S
        stream.append(
            ProfileSnapshot(
                "node-a",
                [
                    MetricSeries("gpu.0.power_avg_mw", ts, 1000.0 * w + np.arange(60), unit="mW"),
                    MetricSeries("gpu.1.power_avg_mw", ts, 2000.0 * w + np.arange(60), unit="mW"),
                    MetricSeries("cpu.util", ts, np.full(60, 0.5 + w), unit="%"),
                ],
            )
        )
    return repo


def rows(dest: Path) -> Counter[tuple[str, int, int]]:
    table = ds.dataset(dest, format="parquet", partitioning="hive").to_table()
    return Counter(
        zip(
            table.column("metric").to_pylist(),
            table.column("timestamp").cast("int64").to_pylist(),
            np.asarray(table.column("value").to_numpy()).view(np.int64).tolist(),
            strict=True,
        )
    )


def duck(sql: str, dest: Path) -> list[tuple]:
    glob = str(dest / "*" / "*" / "*.parquet")
    return duckdb.sql(
        sql.replace("DATA", f"read_parquet('{glob}', hive_partitioning = true)")
    ).fetchall()


def test_a_second_export_into_a_used_dest_is_refused_by_default(tmp_path: Path) -> None:
    """Was: two exports of disjoint ranges into one --dest left 150 of 180 rows."""
    repo, dest = fleet(), tmp_path / "lake"
    first = Selector(metrics=("cpu.util",), end_ns=T0 + 90 * S)
    second = Selector(metrics=("cpu.util",), start_ns=T0 + 90 * S)
    export_parquet(repo, first, str(dest))
    before = rows(dest)
    with pytest.raises(ValidationError, match=r"holds data.*--mode append"):
        export_parquet(repo, second, str(dest))
    assert rows(dest) == before  # nothing changed
    export_parquet(repo, second, str(dest), mode="append")
    assert sum(rows(dest).values()) == 180 and max(rows(dest).values()) == 1
    assert duck("SELECT count(*), count(DISTINCT timestamp) FROM DATA", dest) == [(180, 180)]


def test_overwrite_leaves_only_the_selection(tmp_path: Path) -> None:
    """Was: exporting one metric into a used dest left a stale file of another metric."""
    repo, dest = fleet(), tmp_path / "lake"
    export_parquet(repo, Selector(), str(dest))
    export_parquet(repo, Selector(metrics=("cpu.util",)), str(dest), mode="overwrite")
    assert {m for m, _, _ in rows(dest)} == {"cpu.util"}
    assert duck("SELECT DISTINCT metric FROM DATA", dest) == [("cpu.util",)]


def test_success_marker_lists_the_dataset_and_comes_last(tmp_path: Path) -> None:
    repo, dest = fleet(), tmp_path / "lake"
    report = export_parquet(repo, Selector(), str(dest))
    marker = json.loads((dest / "_SUCCESS").read_text())
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*.parquet"))
    assert marker["files"] == files == sorted(report.files)
    assert marker["rows"] == report.rows == 540
    export_parquet(repo, Selector(metrics=("cpu.util",), start_ns=T0), str(dest), mode="append")
    marker = json.loads((dest / "_SUCCESS").read_text())
    assert marker["files"] == sorted(str(p.relative_to(dest)) for p in dest.rglob("*.parquet"))


def test_appending_the_same_selection_again_converges(tmp_path: Path) -> None:
    repo, dest = fleet(), tmp_path / "lake"
    sel = Selector(metrics=("gpu.*",))
    export_parquet(repo, sel, str(dest), mode="append")
    once = rows(dest)
    export_parquet(repo, sel, str(dest), mode="append")  # a rerun: its files are replaced
    assert rows(dest) == once and sum(once.values()) == 360


def test_gpu_column(tmp_path: Path) -> None:
    repo, dest = fleet(), tmp_path / "lake"
    export_parquet(repo, Selector(), str(dest))
    table = ds.dataset(dest, format="parquet", partitioning="hive").to_table()
    pairs = set(
        zip(table.column("metric").to_pylist(), table.column("gpu").to_pylist(), strict=True)
    )
    assert pairs == {("gpu.0.power_avg_mw", 0), ("gpu.1.power_avg_mw", 1), ("cpu.util", None)}
    got = duck(
        "SELECT gpu, max(value) FROM DATA WHERE gpu IS NOT NULL GROUP BY gpu ORDER BY gpu", dest
    )
    assert got == [(0, 2059.0), (1, 4059.0)]


def test_a_store_dest_follows_the_same_rules() -> None:
    repo = fleet()
    export_parquet(repo, Selector(metrics=("cpu.util",)), "memory://modes-test")
    with pytest.raises(ValidationError, match="holds data"):
        export_parquet(repo, Selector(metrics=("gpu.*",)), "memory://modes-test")
    export_parquet(repo, Selector(metrics=("gpu.*",)), "memory://modes-test", mode="overwrite")
    keys = {i.key for i in MemoryStore.named("modes-test").list("")}
    assert "_SUCCESS" in keys and len(keys) == 2  # both GPUs' rows: one file (one host, day)
    with pytest.raises(ValidationError, match="mode"):
        export_parquet(repo, Selector(), "memory://modes-test", mode="merge")


def test_overwrite_never_deletes_what_is_not_an_export(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValidationError, match=r"notes\.txt, which is not part of"):
        export_parquet(fleet(), Selector(), str(tmp_path), mode="overwrite")
    assert (tmp_path / "notes.txt").read_text() == "mine"


_KILLED_EXPORT = """
import os, signal, sys
import numpy as np
from snapcloud.backends import FileStore
from snapcloud.query import Selector, export_parquet
from snapcloud.query import _export
from snapcloud.store import Repository
writes = [0]
write = _export._Dest.write
def dying_write(self, key, data):
    write(self, key, data)
    writes[0] += 1
    if writes[0] == int(os.environ["KILL_AFTER"]):
        os.kill(os.getpid(), signal.SIGKILL)
_export._Dest.write = dying_write
repo = Repository.open(sys.argv[1])
export_parquet(repo, Selector(), sys.argv[2], max_rows_per_file=50)
"""


def test_a_killed_export_is_detectably_incomplete_and_a_rerun_converges(tmp_path: Path) -> None:
    store = tmp_path / "store"
    src = Repository.open(f"file://{store}")
    for snap_seq in range(fleet().stream("node-a").next_seq):
        src.stream("node-a", create=True).append(fleet().stream("node-a").get(snap_seq))
    dest = tmp_path / "lake"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KILL_AFTER": "2"}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_EXPORT, f"file://{store}", str(dest)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert list(dest.rglob("*.parquet")) and not (dest / "_SUCCESS").exists()  # incomplete
    export_parquet(src, Selector(), str(dest), max_rows_per_file=50)  # the same export again
    assert (dest / "_SUCCESS").exists()
    want = Counter()
    for snap in src.stream("node-a").query():
        for m in snap.metrics:
            want.update(
                zip(
                    [m.name] * len(m),
                    m.timestamps.tolist(),
                    m.values.view(np.int64).tolist(),
                    strict=True,
                )
            )
    assert rows(dest) == want
    assert duck("SELECT count(*) FROM DATA", dest) == [(540,)]


def test_cli_mode_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from snapcloud.cli import main

    store = f"file://{tmp_path / 'store'}"
    src = Repository.open(store)
    for seq in range(fleet().stream("node-a").next_seq):
        src.stream("node-a", create=True).append(fleet().stream("node-a").get(seq))
    dest = str(tmp_path / "lake")
    base = ["export-parquet", "--store", store, "--dest", dest, "--metric", "cpu.util"]
    assert main([*base, "--json"]) == 0
    capsys.readouterr()
    assert main(base) == 2
    assert "holds data" in capsys.readouterr().err
    assert main([*base, "--mode", "append", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "append"
