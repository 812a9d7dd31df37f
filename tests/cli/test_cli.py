"""The CLI contract: commands, --json output, one-line errors with exit status 2."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snapcloud.cli import main

NAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"


@pytest.fixture
def store(tmp_path: Path) -> str:
    """An empty store (commands that only read never create one)."""
    (tmp_path / "store").mkdir()
    return f"file://{tmp_path / 'store'}"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _write_wide(path: Path) -> None:
    lines = ["timestamp, power.draw [W], utilization.gpu [%]"]
    for i in range(150):
        lines.append(
            f"2026/01/01 00:{i // 60:02d}:{i % 60:02d}.000, {50 + i * 0.25:.2f} W, {i % 100} %"
        )
    path.write_text("\n".join(lines) + "\n")


def test_import_export_round_trip_is_bit_exact(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: str
) -> None:
    src = tmp_path / "gpu.csv"
    _write_wide(src)
    code, out, err = run(capsys, "import", "--host", "node-1", "--store", store, "--json", str(src))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["snapshots"] == 3 and doc["samples"] == 300
    code, out, err = run(capsys, "export", "--host", "node-1", "--store", store)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["host", "metric", "timestamp_ns", "value"]
    power = [r for r in rows[1:] if r[1] == "power.draw"]
    assert len(power) == 150
    expected = np.array([float(f"{50 + i * 0.25:.2f}") for i in range(150)])
    got = np.array([float(r[3]) for r in power])
    assert got.tobytes() == expected.tobytes()
    code, out, _ = run(capsys, "show", "--host", "node-1", "--store", store, "--json", "0")
    shown = json.loads(out)
    assert {m["name"]: m["unit"] for m in shown["metrics"]} == {
        "power.draw": "W",
        "utilization.gpu": "%",
    }


@pytest.mark.skipif(not NAB.exists(), reason="shared NAB data not present")
def test_nab_file_export_equals_import(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: str
) -> None:
    src = NAB / "ec2_cpu_utilization_5f5533.csv"
    code, _, err = run(
        capsys, "import", "--host", "nab", "--window", "86400", "--store", store, str(src)
    )
    assert code == 0, err
    code, out, err = run(
        capsys,
        "export",
        "--host",
        "nab",
        "--store",
        store,
        "--start",
        "2014-02-15T00:00:00Z",
        "--end",
        "1392595200000000000",
    )
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))[1:]
    text = src.read_text().splitlines()[1:]
    want = []
    for line in text:
        ts, value = line.split(",")
        ns = int(np.datetime64(ts.replace(" ", "T"), "ns").astype(np.int64))
        if 1392422400 * 10**9 <= ns < 1392595200 * 10**9:
            want.append((ns, float(value)))
    assert [(int(r[2]), float(r[3])) for r in rows] == want
    assert all(float(r[3]).hex() == v.hex() for r, (_, v) in zip(rows, want, strict=True))


def test_ls_stats_verify_json(capsys: pytest.CaptureFixture[str], store: str) -> None:
    code, out, err = run(
        capsys, "demo", "--hosts", "2", "--windows", "5", "--store", store, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["bit_exact"] is True
    code, out, _ = run(capsys, "ls", "--store", store, "--json")
    hosts = json.loads(out)
    assert [h["host"] for h in hosts] == ["gpu-node-0000", "gpu-node-0001"]
    code, out, _ = run(capsys, "ls", "--host", "gpu-node-0001", "--store", store, "--json")
    assert [e["seq"] for e in json.loads(out)] == list(range(5))
    code, out, _ = run(capsys, "stats", "--store", store, "--json")
    stats = json.loads(out)
    assert stats["total"]["snapshots"] == 10
    assert stats["total"]["stored_bytes"] < stats["total"]["raw_bytes"] / 8
    code, out, _ = run(capsys, "verify", "--store", store, "--json")
    assert code == 0 and all(r["ok"] for r in json.loads(out))


def test_verify_finds_a_changed_byte_and_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: str
) -> None:
    run(capsys, "demo", "--hosts", "1", "--windows", "3", "--store", store)
    victim = sorted((tmp_path / "store" / "raw").rglob("*.snap"))[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x10
    victim.write_bytes(bytes(data))
    code, out, _ = run(capsys, "verify", "--store", store, "--json")
    assert code == 1
    (report,) = json.loads(out)
    assert [p["key"] for p in report["problems"]] and not report["ok"]
    assert victim.name in report["problems"][0]["key"]
    code, _, err = run(capsys, "show", "--host", "gpu-node-0000", "--store", store, "1")
    assert code == 2 and "checksum" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ls", "--host", "nobody"], "no host 'nobody'"),
        (["ls", "--store", "ftp://x/y"], "ftp"),
        (["show", "--host", "../etc", "0"], "'..'"),
        (["export", "--host", "h", "--start", "yesterday"], "--start"),
        (["export", "--host", "h", "--format", "xml"], "--format"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], store: str, args: list[str], needle: str
) -> None:
    if "--store" not in args:
        args = [*args, "--store", store]
    code, _out, err = run(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_import_of_a_bad_csv_names_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: str
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("timestamp,value\n1,1.0\n2,2.0\n")
    run(capsys, "import", "--host", "h", "--store", store, str(good))
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n1,1.0\n2,abc\n")
    code, _, err = run(capsys, "import", "--host", "h", "--store", store, str(bad))
    assert code == 2 and "bad.csv:3" in err
    missing = tmp_path / "missing.csv"
    code, _, err = run(capsys, "import", "--host", "h", "--store", store, str(missing))
    assert code == 2 and "missing.csv" in err
    # Nothing already stored was lost or changed.
    code, out, _ = run(capsys, "export", "--host", "h", "--store", store)
    assert out.splitlines()[1:] == ["h,good,1,1.0", "h,good,2,2.0"]


def test_console_script_runs_in_a_subprocess(store: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "snapcloud", "stats", "--store", store, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["total"]["snapshots"] == 0
