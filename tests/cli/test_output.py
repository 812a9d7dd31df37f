"""Honest answers and clean output: selectors that match nothing, strict JSON, jsonl, ISO
times, help without framework noise, and progress bars only on a terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from snapcloud.cli import cli, main

T = "2026-01-01T00:00:00Z"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def strict(text: str) -> Any:
    """Parse as a strict parser would: NaN, Infinity and -Infinity are errors."""

    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    store = f"file://{tmp_path / 'store'}"
    code, _, err = run(capsys, "demo", "--hosts", "2", "--windows", "3", "--store", store)
    assert code == 0, err
    return store


@pytest.fixture
def nonfinite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    store = f"file://{tmp_path / 'nf'}"
    src = tmp_path / "m.csv"
    rows = ["1.5", "inf", "-inf", "nan"]
    src.write_text(
        "timestamp,value\n" + "".join(f"2026-01-01 00:00:0{i},{v}\n" for i, v in enumerate(rows))
    )
    code, _, err = run(capsys, "import", "--host", "h", "--store", store, str(src))
    assert code == 0, err
    return store


def _warnings(err: str) -> list[str]:
    return [line.removeprefix("snapcloud: warning: ") for line in err.splitlines()]


@pytest.mark.parametrize(
    ("args", "warning"),
    [
        (["--host", "nosuch"], "--host 'nosuch' matched no host (of 2)"),
        (["--metric", "bogus.*"], "--metric 'bogus.*' matched no metric"),
        (["--where", "rack=r99"], "--where 'rack=r99' matched none of the 2 host(s)"),
        (["--fingerprint", "nojob"], "--fingerprint 'nojob' matched no snapshot"),
    ],
)
def test_a_selector_that_matches_nothing_says_so(
    capsys: pytest.CaptureFixture[str], fleet: str, args: list[str], warning: str
) -> None:
    base = ["query", "--store", fleet, "--metric", "cpu.util", "--since", "3650d"]
    code, out, err = run(capsys, *base, *args, "--format", "json")
    assert code == 0, err
    warned = _warnings(err)
    assert any(w.startswith(warning) for w in warned), err
    assert strict(out)["warnings"] == warned
    code, out, err = run(capsys, *base, *args)  # the table too
    assert code == 0 and any(w.startswith(warning) for w in _warnings(err)), err


def test_a_selector_that_matches_something_is_quiet(
    capsys: pytest.CaptureFixture[str], fleet: str
) -> None:
    args = ["--metric", "cpu.util", "--metric", "gpu.*.power_avg_mw", "--host", "gpu-node-*"]
    code, out, err = run(
        capsys, "query", "--store", fleet, "--since", "3650d", *args, "--format", "json"
    )
    assert code == 0 and "warning" not in err and strict(out)["warnings"] == []
    assert strict(out)["rows"]


def test_hosts_and_export_parquet_warn_too(
    capsys: pytest.CaptureFixture[str], fleet: str, tmp_path: Path
) -> None:
    code, out, err = run(capsys, "hosts", "--store", fleet, "--host", "nope*", "--json")
    assert code == 0 and strict(out)["warnings"] == ["--host 'nope*' matched no host (of 2)"]
    assert _warnings(err) == strict(out)["warnings"]
    dest = str(tmp_path / "pq")
    args = ["export-parquet", "--store", fleet, "--dest", dest, "--metric", "nope.*", "--json"]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert strict(out)["warnings"][0].startswith("--metric 'nope.*' matched no metric")


def test_export_takes_globs_and_warns_on_none(
    capsys: pytest.CaptureFixture[str], fleet: str
) -> None:
    base = ["export", "--store", fleet, "--host", "gpu-node-0000"]
    code, out, err = run(capsys, *base, "--metric", "gpu.0.*", "--metric", "cpu.util")
    assert code == 0 and "Traceback" not in err, err
    rows = list(csv.DictReader(io.StringIO(out)))
    names = {r["metric"] for r in rows}
    assert "cpu.util" in names and len(names) > 2
    assert all(n == "cpu.util" or n.startswith("gpu.0.") for n in names)
    code, out, err = run(capsys, *base, "--metric", "nomatch.*")
    assert code == 0 and out == "host,metric,timestamp_ns,value\n"
    assert _warnings(err) == [
        "--metric 'nomatch.*' matched no metric of 'gpu-node-0000' in the time range"
    ]


@pytest.mark.parametrize("command", ["verify", "compact"])
def test_verify_and_compact_of_an_unknown_host_exit_2(
    capsys: pytest.CaptureFixture[str], fleet: str, command: str
) -> None:
    code, _, err = run(capsys, command, "--store", fleet, "--host", "nosuch")
    assert code == 2 and err.strip() == f"snapcloud: error: no host 'nosuch' in {fleet}", err


def test_json_is_strict_and_non_finite_values_are_strings(
    capsys: pytest.CaptureFixture[str], nonfinite: str
) -> None:
    args = ["query", "--store", nonfinite, "--metric", "m", "--start", T]
    args += ["--agg", "max", "--agg", "min", "--agg", "mean", "--agg", "count"]
    code, out, err = run(capsys, *args, "--format", "json")
    assert code == 0 and "Warning" not in err, err
    (row,) = strict(out)["rows"]
    assert (row["max"], row["min"], row["mean"], row["count"]) == ("+Inf", "-Inf", None, 3)
    code, out, _ = run(capsys, *args, "--format", "jsonl")
    assert [strict(line) for line in out.splitlines()] == [row]
    code, out, _ = run(capsys, "export", "--store", nonfinite, "--host", "h", "--format", "jsonl")
    (doc,) = [strict(line) for line in out.splitlines()]
    assert doc["values"] == ["1.5", "inf", "-inf", "nan"]  # repr: each parses back exactly
    for command in (["show", "--host", "h", "0"], ["stats"], ["ls"], ["verify"]):
        code, out, _ = run(capsys, *command, "--store", nonfinite, "--json")
        assert code == 0 and strict(out) is not None


def test_jsonl_has_one_object_per_row(capsys: pytest.CaptureFixture[str], fleet: str) -> None:
    args = ["query", "--store", fleet, "--metric", "gpu.*.power_avg_mw", "--since", "3650d"]
    args += ["--group-by", "host", "--agg", "max", "--step", "60"]
    code, out, _ = run(capsys, *args, "--format", "json")
    rows = strict(out)["rows"]
    code, out, _ = run(capsys, *args, "--format", "jsonl")
    assert code == 0 and [strict(line) for line in out.splitlines()] == rows and len(rows) > 2
    import pyarrow.json

    table = pyarrow.json.read_json(io.BytesIO(out.encode()))
    assert table.num_rows == len(rows) and table.column("max").to_pylist() == [
        r["max"] for r in rows
    ]


def test_csv_times_as_iso(capsys: pytest.CaptureFixture[str], fleet: str) -> None:
    args = ["query", "--store", fleet, "--metric", "cpu.util", "--since", "3650d"]
    args += ["--step", "60", "--format", "csv"]
    _, out_ns, _ = run(capsys, *args)
    _, out_iso, _ = run(capsys, *args, "--time-format", "iso")
    ns = list(csv.DictReader(io.StringIO(out_ns)))
    iso = list(csv.DictReader(io.StringIO(out_iso)))
    assert len(ns) == len(iso) > 0
    from snapcloud.timeparse import format_ns, parse_instant

    for a, b in zip(ns, iso, strict=True):
        assert b["time"] == format_ns(int(a["time"]))
        assert parse_instant(b["time"]) == int(a["time"])
    code, out, _ = run(
        capsys, "export", "--store", fleet, "--host", "gpu-node-0000", "--time-format", "iso"
    )
    assert code == 0
    first = next(csv.DictReader(io.StringIO(out)))
    assert first["timestamp"].endswith("Z") and "timestamp_ns" not in first


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        out.append((*path, name))
        if hasattr(command, "commands"):
            out += _commands(command, (*path, name))
    return out


@pytest.mark.parametrize("path", _commands(cli), ids=" ".join)
def test_help_has_no_framework_noise(capsys: pytest.CaptureFixture[str], path: tuple[str]) -> None:
    code, out, _ = run(capsys, *path, "--help")
    assert code == 0 and out.startswith("Usage: snapcloud")
    for noise in ("<bool>", "TEXT", "INTEGER", "FLOAT", "RANGE", "PATH", "BOOLEAN"):
        assert noise not in out, (path, noise)


# ---------------------------------------------------------------------------- progress


def _snapcloud() -> list[str]:
    script = shutil.which("snapcloud", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "snapcloud"]


def _in_pty(args: list[str]) -> tuple[int, str]:
    """Run ``snapcloud args`` with stdout and stderr on a pseudo-terminal; all it wrote."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal 120 columns wide
        os.environ["COLUMNS"] = "120"
        os.environ.pop("SNAPCLOUD_DEBUG", None)
        os.execv(_snapcloud()[0], [*_snapcloud(), *args])
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


BAR = "━"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.parametrize(
    ("args", "unit"),
    [
        (["verify"], "objects"),
        (["query", "--metric", "cpu.util", "--since", "3650d", "--format", "csv"], "snapshots"),
        (["export", "--host", "gpu-node-0001"], "snapshots"),
        (["compact", "--dry-run"], "hosts"),
    ],
)
def test_a_terminal_shows_a_progress_bar_and_a_pipe_does_not(
    fleet: str, args: list[str], unit: str
) -> None:
    if _snapcloud()[0] == sys.executable:
        pytest.skip("the console script is not installed beside this interpreter")
    code, shown = _in_pty([*args, "--store", fleet])
    assert code == 0, shown
    plain = ANSI.sub("", shown)
    assert BAR in plain and re.search(rf"\b\d+/\d+ {unit}\b", plain), plain[-2000:]
    piped = subprocess.run(
        [*_snapcloud(), *args, "--store", fleet], capture_output=True, text=True, check=False
    )
    assert piped.returncode == 0, piped.stderr
    assert BAR not in piped.stderr and "\x1b[" not in piped.stdout + piped.stderr
    assert not re.search(rf"\d+/\d+ {unit}", piped.stdout + piped.stderr)


def test_json_on_a_terminal_has_no_bar(fleet: str) -> None:
    if _snapcloud()[0] == sys.executable:
        pytest.skip("the console script is not installed beside this interpreter")
    code, shown = _in_pty(["verify", "--json", "--store", fleet])
    assert code == 0 and BAR not in shown
    assert all(r["ok"] for r in strict(shown.strip()))
