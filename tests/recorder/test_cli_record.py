"""``snapcloud record`` as a real process: runs, survives SIGKILL, seals on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from snapcloud.models import ProfileSnapshot
from snapcloud.recorder import Spool
from snapcloud.store import Repository

ROOT = Path(__file__).resolve().parents[2]
HOST = "rec-test-1"
# Until snapcloud/cli/__init__.py imports the record command, load it explicitly.
_REGISTERED = "_record" in (ROOT / "snapcloud" / "cli" / "__init__.py").read_text()
_LAUNCH = "import sys, snapcloud.cli._record; from snapcloud.cli import main; sys.exit(main())"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def record_cmd(*args: str) -> list[str]:
    head = ["-m", "snapcloud"] if _REGISTERED else ["-c", _LAUNCH]
    return [sys.executable, *head, "record", "--host", HOST, *args]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("SNAPCLOUD_")}
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def stream_snapshots(store: Path) -> list[ProfileSnapshot]:
    repo = Repository.open(f"file://{store}")
    stream = repo.stream(HOST)
    return [stream.get(e.seq) for e in stream.entries()]


def wait_for(predicate: Callable[[], bool], timeout: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"recorder exited early ({proc.returncode}): {err}")
        time.sleep(0.05)
    proc.kill()
    _, err = proc.communicate()
    raise AssertionError(f"timed out; recorder stderr: {err}")


def test_record_runs_for_its_duration_and_stores_cpu_windows(tmp_path: Path) -> None:
    from snapcloud.collectors import GpuCollector

    store = tmp_path / "store"
    done = subprocess.run(
        record_cmd(
            "--duration", "3", "--interval", "0.2", "--window", "1",
            "--store", f"file://{store}", "--spool-dir", str(tmp_path / "spool"),
            "--label", "team=ml", "--json",
        ),
        capture_output=True, text=True, timeout=60, env=env(), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    snaps = stream_snapshots(store)
    assert len(snaps) == len(lines) >= 3
    assert [s.metadata["spool_id"] for s in snaps] == [d["spool_id"] for d in lines]
    names = {m.name for s in snaps for m in s.metrics}
    assert {"cpu.util", "mem.used", "recorder.late_ms", "recorder.skipped_ticks"} <= names
    assert snaps[-1].labels["team"] == "ml"
    # Only the last window can be cut short (it is full when the stop fell on its last tick).
    assert not any(d["partial"] for d in lines[:-1])
    if not GpuCollector(opt_in={"processes"}).available:
        assert "no GPU collector: " in done.stderr
    assert "recorded rec-test-1:" in done.stderr
    assert list((tmp_path / "spool").glob("*.snap")) == []


def test_sigkill_then_restart_delivers_every_spooled_window_exactly_once(tmp_path: Path) -> None:
    spool_dir, store = tmp_path / "spool", tmp_path / "store"
    # Run 1: S3 unreachable, so every sealed window stays in the spool; then SIGKILL.
    proc = subprocess.Popen(
        record_cmd(
            "--interval", "0.1", "--window", "0.5", "--fingerprint", "kill-test",
            "--store", "s3://bucket/prefix", "--endpoint-url", "http://127.0.0.1:1",
            "--spool-dir", str(spool_dir),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=tmp_path,
    )  # fmt: skip
    wait_for(lambda: len(list(spool_dir.glob("*.snap"))) >= 2, 30, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    spooled = sorted(spool_dir.glob("*.snap"))
    acknowledged = {Spool.spool_id(p) for p in spooled}
    assert len(acknowledged) >= 2
    # A torn file from a crash is moved aside, never uploaded.
    (spool_dir / f"{999:012d}-{'e' * 32}.snap").write_bytes(b"SNAP torn")

    # Run 2: same host and spool, a reachable store.
    done = subprocess.run(
        record_cmd(
            "--duration", "1", "--interval", "0.1", "--window", "0.5",
            "--fingerprint", "kill-test", "--store", f"file://{store}",
            "--spool-dir", str(spool_dir), "--no-gpu",
        ),
        capture_output=True, text=True, timeout=60, env=env(), cwd=tmp_path,
    )  # fmt: skip
    # the torn file was a spooled window that can never be stored: the run says so, exit 2
    assert done.returncode == 2, done.stderr
    assert "1 window(s) LOST" in done.stderr.splitlines()[-1]
    ids = [s.metadata["spool_id"] for s in stream_snapshots(store)]
    assert len(ids) == len(set(ids)), "nothing appended twice"
    assert acknowledged <= set(ids), "every acknowledged window arrived"
    assert "e" * 32 not in ids
    assert (spool_dir / "quarantine" / f"{999:012d}-{'e' * 32}.snap").exists()
    assert "corrupt" in done.stderr
    assert list(spool_dir.glob("*.snap")) == []


def test_sigterm_seals_the_partial_window(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = subprocess.Popen(
        record_cmd(
            "--interval", "0.1", "--window", "60", "--no-gpu",
            "--store", f"file://{store}", "--spool-dir", str(tmp_path / "spool"),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=tmp_path,
    )  # fmt: skip
    lease = store / "marks" / "leases" / f"{HOST}.json"
    wait_for(lease.exists, 30, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    snaps = stream_snapshots(store)
    assert 1 <= len(snaps) <= 2  # two when the run straddled a minute boundary
    assert snaps[-1].metadata["partial"] is True
    assert sum(int(str(s.metadata["samples"])) for s in snaps) >= 5
    assert "SIGTERM" in err
    assert not lease.exists(), "the lease is released on a clean exit"


def test_a_hostname_that_is_not_a_host_id_asks_for_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import snapcloud.cli._record  # noqa: F401  (registers the command)
    from snapcloud.cli import main

    monkeypatch.setattr("socket.gethostname", lambda: "my laptop (2)")
    assert main(["record", "--duration", "0.1", "--store", "memory://rec-host"]) == 2
    err = capsys.readouterr().err
    assert "'my laptop (2)'" in err and "--host" in err


@pytest.mark.parametrize(
    ("text", "size"),
    [("1073741824", 2**30), ("1GiB", 2**30), ("512MiB", 2**29), ("2g", 2 * 2**30), ("1.5K", 1536)],
)
def test_spool_sizes_parse(text: str, size: int) -> None:
    from snapcloud.settings import parse_size

    assert parse_size(text) == size
