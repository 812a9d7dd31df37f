"""The fleet commands over the moto server: hosts, query (table/json/csv/parquet), plot, export."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import snapcloud.cli._query  # registers the commands until snapcloud.cli imports it
from snapcloud.cli import main
from snapcloud.query import Selector, read_series, run_query
from tests.query.conftest import A100, MIN, T0, Fleet


def run(capsys: pytest.CaptureFixture[str], fleet: Fleet, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--store", fleet.url, "--endpoint-url", fleet.endpoint])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


WINDOW = ["--start", "2026-01-01T00:03:00Z", "--end", "2026-01-01T00:09:30Z"]


def test_query_json_matches_the_api(capsys: pytest.CaptureFixture[str], fleet: Fleet) -> None:
    args = ["query", "--metric", "gpu.*.power_avg_mw", "--metric", "disk.read_bytes", *WINDOW]
    args += ["--where", f"gpu.model={A100}", "--agg", "mean", "--agg", "p95", "--agg", "rate"]
    code, out, err = run(capsys, fleet, *args, "--group-by", "host", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["columns"] == ["host", "metric", "unit", "kind", "mean", "p95", "rate"]
    api = run_query(
        fleet.repo,
        Selector(
            metrics=("gpu.*.power_avg_mw", "disk.read_bytes"),
            start_ns=T0 + 3 * MIN,
            end_ns=T0 + 9 * MIN + 30 * 10**9,
            where=(snapcloud.query.LabelMatcher.parse(f"gpu.model={A100}"),),
        ),
        aggs=("mean", "p95", "rate"),
        group_by=("host",),
    )
    assert doc["rows"] == api.records()
    assert {r["host"] for r in doc["rows"]} == {"gpu-node-0001", "gpu-node-0003", "gpu-node-0005"}
    st = doc["stats"]
    assert st["hosts"] == 3 and st["objects"] > 0 and st["total_requests"] >= st["min_requests"]


def test_query_csv_table_and_step(capsys: pytest.CaptureFixture[str], fleet: Fleet) -> None:
    args = ["query", "--metric", "gpu.0.temp_c", "--host", "gpu-node-000[01]", *WINDOW]
    code, out, err = run(capsys, fleet, *args, "--agg", "max", "--step", "180", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["time"] for r in rows[:3]] == [str(T0 + k * 3 * MIN) for k in (1, 2, 3)]
    assert {r["metric"] for r in rows} == {"gpu.*.temp_c"}
    assert len(rows) == 3  # fleet-wide per bucket: no group-by
    _, vals = fleet.reference("gpu-node-0000", "gpu.0.temp_c", T0 + 3 * MIN, T0 + 6 * MIN)
    _, vals1 = fleet.reference("gpu-node-0001", "gpu.0.temp_c", T0 + 3 * MIN, T0 + 6 * MIN)
    assert float(rows[0]["max"]) == max(vals.max(), vals1.max())
    code, out, err = run(capsys, fleet, *args, "--group-by", "host", "--agg", "count")
    assert code == 0, err
    assert "gpu-node-0000" in out and "gpu-node-0001" in out and "count" in out
    assert "objects" in err and "requests" in err


def test_query_parquet_and_output_files(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, tmp_path: Path
) -> None:
    target = tmp_path / "q.parquet"
    args = ["query", "--metric", "cpu.util", "--group-by", "host", "--agg", "mean", "--agg", "last"]
    code, _, err = run(capsys, fleet, *args, "--format", "parquet", "-o", str(target))
    assert code == 0, err
    table = pq.read_table(target)
    assert table.column_names == ["host", "metric", "unit", "kind", "mean", "last"]
    assert table.num_rows == 6
    code, _, err = run(capsys, fleet, *args, "-o", str(tmp_path / "q.json"))
    assert code == 0, err
    doc = json.loads((tmp_path / "q.json").read_text())
    assert [r["mean"] for r in doc["rows"]] == table.column("mean").to_pylist()
    code, _, err = run(capsys, fleet, *args, "-o", str(tmp_path / "q.txt"))
    assert code == 2 and "give --format" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "x", "--where", "rack"], "--where: cannot parse 'rack'"),
        (["--metric", "x", "--since", "1h", "--start", "0"], "not both"),
        (["--metric", "x", "--agg", "median"], "unknown aggregation 'median'"),
        (["--metric", "x", "--group-by", "no/such"], "--group-by"),
        (["--metric", "bad/name"], "metrics"),
        (["--metric", "x", "--since", "later"], "--since: cannot parse"),
        (["--metric", "x", "--format", "xml"], "--format: 'xml'"),
        (["--metric", "x", "--where", "a=~("], "bad regular expression"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, args: list[str], message: str
) -> None:
    code, _, err = run(capsys, fleet, "query", *args)
    assert code == 2
    assert err.startswith("snapcloud: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_hosts_lists_the_catalog(capsys: pytest.CaptureFixture[str], fleet: Fleet) -> None:
    code, out, err = run(capsys, fleet, "hosts", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [h["host"] for h in doc["hosts"]] == sorted(fleet.snaps)
    assert doc["uncataloged"] == []
    assert doc["hosts"][1]["labels"]["gpu.model"] == A100
    assert doc["hosts"][0]["tiers"]["raw"]["snapshots"] == 12
    code, out, err = run(capsys, fleet, "hosts", "--json", "--where", "rack=r0", "--host", "*2")
    assert [h["host"] for h in json.loads(out)["hosts"]] == ["gpu-node-0002"]
    code, out, err = run(capsys, fleet, "hosts")
    assert code == 0 and "gpu-node-0005" in out and "rack=r1" in out


def test_plot_writes_a_png(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, tmp_path: Path
) -> None:
    png = tmp_path / "power.png"
    args = ["plot", "--metric", "gpu.*.power_avg_mw", "--metric", "gpu.*.temp_c"]
    code, _, err = run(capsys, fleet, *args, "--host", "gpu-node-0001", "-o", str(png))
    assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert "16 series" in err
    stepped = tmp_path / "fleet.png"
    code, _, err = run(
        capsys, fleet, "plot", "--metric", "gpu.*.power_avg_mw", "--step", "120", "-o", str(stepped)
    )
    assert code == 0, err
    assert stepped.read_bytes()[:4] == b"\x89PNG" and "48 series" in err
    code, _, err = run(capsys, fleet, "plot", "--metric", "nothing.*", "-o", str(png))
    assert code == 2 and "no samples" in err
    # a misspelt glob beside one that matches: drawn, and the misspelt one named
    args = ["plot", "--metric", "gpu.*.temp_c", "--metric", "gpu.*.tmep_c", "-o", str(png)]
    code, _, err = run(capsys, fleet, *args, "--host", "gpu-node-0001")
    assert code == 0, err
    assert "warning: --metric 'gpu.*.tmep_c' matched no samples" in err
    assert "'gpu.*.temp_c' matched" not in err


def test_export_parquet_round_trip(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, tmp_path: Path
) -> None:
    dest = tmp_path / "export"
    args = ["export-parquet", "--dest", f"file://{dest}", "--metric", "gpu.1.*"]
    args += ["--metric", "net.rx_bytes", "--host", "gpu-node-000[12]", "--labels", "--json"]
    code, out, err = run(capsys, fleet, *args)
    assert code == 0, err
    doc = json.loads(out)
    assert [f.rsplit("-", 2)[0] for f in sorted(doc["files"])] == [
        "host=gpu-node-0001/date=2026-01-01/part",
        "host=gpu-node-0002/date=2026-01-01/part",
    ]
    assert all(f.endswith("-00000.parquet") for f in doc["files"])
    assert (dest / "_SUCCESS").exists()
    table = ds.dataset(dest, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == doc["rows"]
    assert str(table.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"
    assert {"metric", "value", "unit", "kind", "fingerprint", "host", "date"} <= set(
        table.column_names
    )
    assert set(table.column("label_gpu_model").to_pylist()) == {A100, "NVIDIA H100 80GB HBM3"}
    got = read_series(
        fleet.repo,
        Selector(hosts=("gpu-node-000[12]",), metrics=("gpu.1.*", "net.rx_bytes")),
    )
    rows = table.to_pydict()
    host = np.array(rows["host"])
    metric = np.array(rows["metric"])
    ts = table.column("timestamp").cast("int64").to_numpy()
    values = table.column("value").to_numpy()
    assert len(got) == 2 * 10  # nine gpu.1 fields and net.rx_bytes per host
    for s in got:
        pick = (host == s.host) & (metric == s.metric)
        assert np.array_equal(ts[pick], s.timestamps)
        assert values[pick].tobytes() == s.values.tobytes()  # NaNs included, bit for bit
        assert set(np.array(rows["unit"])[pick]) == {s.unit}
    mean = run_query(fleet.repo, Selector(hosts=("gpu-node-0001",), metrics=("net.rx_bytes",)))
    pick = (host == "gpu-node-0001") & (metric == "net.rx_bytes")
    assert mean.records()[0]["mean"] == pytest.approx(float(np.nanmean(values[pick])), rel=1e-12)
