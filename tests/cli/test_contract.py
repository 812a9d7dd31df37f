"""The command-line contract, driven through the installed ``snapcloud`` console script.

Every kind of usage error is one line on stderr naming what is wrong, exit status 2,
no traceback. These tests run the real entry point in a subprocess, so they hold for
whichever Click the environment resolved (``scripts/check-deps newest|lowest`` runs
them on the newest and the lowest releases the declared ranges allow).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import snapcloud


def _snapcloud() -> list[str]:
    """The console script installed beside this interpreter (else ``python -m snapcloud``)."""
    script = shutil.which("snapcloud", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "snapcloud"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SNAPCLOUD_DEBUG", None)
    return subprocess.run(
        [*_snapcloud(), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=full_env,
    )


@pytest.fixture
def store(tmp_path: Path) -> str:
    """An existing, empty store (read-only commands never create one)."""
    (tmp_path / "store").mkdir()
    return f"file://{tmp_path / 'store'}"


USAGE_ERRORS = [
    pytest.param(["query", "--metric", "x", "--bogus"], "--bogus", id="unknown-option"),
    pytest.param(["--bogus", "stats"], "--bogus", id="unknown-global-option"),
    pytest.param(["nosuchcommand"], "nosuchcommand", id="unknown-command"),
    pytest.param(["lifecycle", "nosuch"], "nosuch", id="unknown-subcommand"),
    pytest.param(["query"], "--metric", id="missing-option"),
    pytest.param(["import", "x.csv"], "--host", id="missing-required-option"),
    pytest.param(["import", "--host", "h"], "FILES", id="missing-argument"),
    pytest.param(["show", "--host", "h"], "SEQ", id="missing-argument-seq"),
    pytest.param(["record", "--duration"], "--duration", id="option-without-value"),
    pytest.param(["stats", "--store"], "--store", id="global-option-without-value"),
    pytest.param(["--store"], "--store", id="global-option-before-without-value"),
    pytest.param(["demo", "--hosts", "abc"], "--hosts", id="bad-int"),
    pytest.param(["record", "--interval", "fast"], "--interval", id="bad-float"),
    pytest.param(["query", "--metric", "x", "--agg", "median"], "--agg", id="bad-choice"),
    pytest.param(["export", "--host", "h", "--format", "xml"], "--format", id="bad-choice-format"),
    pytest.param(["query", "--metric", "x", "--step", "0"], "--step", id="out-of-range-float"),
    pytest.param(["demo", "--hosts", "0"], "--hosts", id="out-of-range-int"),
    pytest.param(["show", "--host", "h", "--", "-1"], "SEQ", id="out-of-range-argument"),
    pytest.param(["lifecycle"], "lifecycle", id="group-without-command"),
    pytest.param(["verify", "--repair=yes"], "--repair", id="flag-with-value"),
]


@pytest.mark.parametrize(("args", "needle"), USAGE_ERRORS)
def test_usage_error_is_one_line_exit_2(store: str, args: list[str], needle: str) -> None:
    res = run(*args, env={"SNAPCLOUD_STORE": store})
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("snapcloud: error: "), lines[0]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""


@pytest.mark.parametrize(("args", "needle"), USAGE_ERRORS[:3])
def test_usage_errors_stay_one_line_with_debug(store: str, args: list[str], needle: str) -> None:
    res = run("--debug", *args, env={"SNAPCLOUD_STORE": store})
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr


def test_library_error_is_one_line_and_debug_shows_the_traceback(store: str) -> None:
    res = run("ls", "--host", "nobody", "--store", store)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith("snapcloud: error: no host 'nobody'"), lines[0]
    res = run("--debug", "ls", "--host", "nobody", "--store", store)
    assert res.returncode != 0 and "Traceback" in res.stderr and "HostNotFound" in res.stderr


def test_bare_snapcloud_prints_the_command_list_on_stderr_and_exits_2() -> None:
    res = run()
    assert res.returncode == 2 and res.stdout == ""
    assert "Commands:" in res.stderr and "query" in res.stderr and "Traceback" not in res.stderr


def test_help_goes_to_stdout_with_exit_0() -> None:
    for args in (["--help"], ["-h"], ["query", "--help"], ["lifecycle", "show", "--help"]):
        res = run(*args)
        assert res.returncode == 0 and res.stdout.startswith("Usage: snapcloud"), args
        assert res.stderr == ""


def test_version() -> None:
    res = run("--version")
    assert res.returncode == 0 and res.stdout == f"snapcloud {snapcloud.__version__}\n"


STATS = ["stats", "--json"]


@pytest.mark.parametrize(
    "args",
    [
        ["--store", "{store}", "stats", "--json"],
        ["stats", "--store", "{store}", "--json"],
        ["--store", "file:///nonexistent/elsewhere", "stats", "--store", "{store}", "--json"],
        ["--debug", "--store", "{store}", "--endpoint-url", "http://127.0.0.1:9", *STATS],
    ],
    ids=["before", "after", "after-wins", "all-three-before"],
)
def test_global_options_before_or_after_the_command(store: str, args: list[str]) -> None:
    res = run(*(a.format(store=store) for a in args))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["store"].endswith(store.removeprefix("file://")), doc
    assert doc["total"]["snapshots"] == 0


def test_global_options_reach_subgroup_commands(store: str) -> None:
    res = run("--store", "memory://x", "lifecycle", "apply")
    assert res.returncode == 2 and "s3://" in res.stderr, res.stderr
