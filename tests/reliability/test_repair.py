"""``verify --repair`` and the compactor never lose or duplicate acknowledged data.

Each case was first a failing reproduction of a way the product's own tools lost
acknowledged snapshots (docs/RELIABILITY.md, "Repair and the compactor"):

- a repair racing a live writer (the recorder, in real processes; appends, in threads);
- two objects claiming one seq with the index gone (a lost-race keyframe);
- an index segment rolled back to an older valid version;
- a file store whose date directory was moved to another disk and symlinked back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from snapcloud import codec
from snapcloud.backends import FileStore, MemoryStore, ObjectStore
from snapcloud.errors import ConflictError
from snapcloud.index import data_key, parse_data_key, segment_key
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig
from snapcloud.retention import Compactor
from snapcloud.store import HostStream, Repository, verify_stream
from tests.retention.scenario import HOUR, T0

ROOT = Path(__file__).resolve().parents[2]
NS = 10**9
CONFIG = SnapshotConfig(keyframe_interval=8)


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapcloud", *args],
        capture_output=True, text=True, timeout=timeout, env=cli_env(), cwd=ROOT,
    )  # fmt: skip


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPCLOUD_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def snap(host: str, i: int, *, tag: str = "a", n: int = 30, shift_s: int = 0) -> ProfileSnapshot:
    """Window ``i`` of ``host`` (``tag`` makes another writer's different content;
    ``shift_s`` moves it in time: a day back puts its key first, in the day before)."""
    rng = np.random.default_rng([ord(c) for c in tag] + [i])
    ts = T0 + (shift_s + i * n + np.arange(n, dtype=np.int64)) * NS
    return ProfileSnapshot(
        host,
        [
            MetricSeries("util", ts, np.round(rng.normal(50, 10, n), 1), unit="%"),
            MetricSeries("temp", ts, np.round(rng.normal(70, 3, n), 2)),
        ],
        window_start=int(ts[0]),
        window_end=int(ts[-1]) + NS,
        fingerprint="train",
        metadata={"writer": tag, "i": i},
    )


def write_csv(path: Path, rows: int, start_s: int = 1_767_225_600) -> Path:
    lines = ["timestamp,util,temp"]
    lines += [f"{_iso(start_s + i)},{(i * 7) % 100}.5,{60 + i % 13}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _iso(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def acknowledged(objects: ObjectStore, host: str, expected: dict[int, ProfileSnapshot]) -> None:
    """Every acknowledged snapshot reads back bit-exact at its seq; no content twice."""
    stream = HostStream(objects, host, CONFIG)
    entries = list(stream.entries())
    assert [e.seq for e in entries] == sorted({e.seq for e in entries})
    for seq, want in expected.items():
        got = stream.get(seq)
        assert got == want.with_seq(seq) and got.checksum == want.with_seq(seq).checksum
    metas = [stream.get(e.seq).metadata for e in entries]
    tags = [(m.get("writer"), m.get("i")) for m in metas]
    assert len(tags) == len(set(tags)), f"a snapshot is stored twice: {tags}"


# --------------------------------------------------------------------------- 1: repair vs writer


def test_repair_while_recording_keeps_every_acknowledged_window(tmp_path: Path) -> None:
    """The issue's run, scaled to this machine: a recorder appends every 0.2 s while
    ``verify --repair`` runs four times; every window the recorder acknowledged (one
    JSON line each) must be in the stream exactly once, bit for bit."""
    store = f"file://{tmp_path / 'store'}"
    imported = cli(
        "import", str(write_csv(tmp_path / "h.csv", 20_000)), "--host", "h",
        "--window", "60", "--store", store,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    recorder = subprocess.Popen(
        [
            sys.executable, "-m", "snapcloud", "record", "--host", "h", "--interval", "0.05",
            "--window", "0.2", "--duration", "8", "--json", "--no-gpu", "--store", store,
            "--spool-dir", str(tmp_path / "spool"), "--fingerprint", "race",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT,
    )  # fmt: skip
    repairs = []
    try:
        time.sleep(2.0)
        for _ in range(4):
            repairs.append(cli("verify", "--repair", "--host", "h", "--json", "--store", store))
            time.sleep(0.3)
        out, err = recorder.communicate(timeout=120)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, err
    acked = [json.loads(line)["spool_id"] for line in out.splitlines()]
    assert len(acked) >= 20
    stream = Repository.open(store).stream("h")
    ids = [stream.get(e.seq).metadata.get("spool_id") for e in stream.entries()]
    recorded = [i for i in ids if i is not None]
    missing = sorted(set(acked) - set(recorded))
    print(
        f"\nrepair vs recorder: {len(acked)} acknowledged, {len(set(acked) & set(recorded))} "
        f"found, {len(missing)} missing, {len(recorded) - len(set(recorded))} stored twice; "
        f"repairs exit {[r.returncode for r in repairs]}"
    )
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged windows lost"
    assert len(recorded) == len(set(recorded)), "a window is stored twice"
    for r in repairs:  # refused while the recorder holds the lease, or repaired nothing
        assert r.returncode in (0, 1), r.stderr


def test_repair_racing_appends_in_threads_loses_and_doubles_nothing() -> None:
    """Appends without a lease (a library user, an import) racing repeated repairs:
    each acknowledged append is in the stream once, bit-exact; a ``ConflictError``
    is retried as a caller would, and never leaves the snapshot twice."""
    objects = MemoryStore()
    host = "race"
    stream = HostStream(objects, host, CONFIG)
    for i in range(20):
        stream.append(snap(host, i))
    acked: dict[int, ProfileSnapshot] = {i: snap(host, i) for i in range(20)}
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(20, 140):
                s = snap(host, i)
                for _ in range(50):
                    try:
                        acked[stream.append(s).seq] = s
                        break
                    except ConflictError:
                        stream.refresh()
                        if _already_in(stream, s):
                            break  # an earlier attempt landed (a repair indexed it)
                else:
                    raise AssertionError(f"append {i} never went through")
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    def repairer() -> None:
        try:
            while not stop.is_set():
                verify_stream(HostStream(objects, host, CONFIG), repair=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=repairer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    acknowledged(objects, host, acked)
    report = verify_stream(HostStream(objects, host, CONFIG))
    assert report.ok, report.problems


def _already_in(stream: HostStream, s: ProfileSnapshot) -> bool:
    return any(e.checksum == s.with_seq(e.seq).checksum for e in stream.entries())


# --------------------------------------------------------------------------- 2: seq conflicts


def _loser_keyframe(objects: ObjectStore, host: str, seq: int, s: ProfileSnapshot) -> str:
    """Write what a writer that lost the race for ``seq`` leaves: its object, unindexed."""
    lost = s.with_seq(seq)
    key = data_key(host, seq, seq, lost.window_start, lost.checksum)
    objects.put(key, codec.encode_keyframe(lost), if_absent=True)
    return key


def test_repair_keeps_the_keyframe_its_deltas_support(tmp_path: Path) -> None:
    """Two writers raced for seq 0 of a new host; the index segment is then lost. Repair
    must rebuild from the keyframe the winner's deltas decode against, not the first
    key, and the compactor must never delete the winner's objects."""
    objects = FileStore(tmp_path / "store")
    host = "h"
    stream = HostStream(objects, host, CONFIG)
    won = {i: snap(host, i) for i in range(12)}
    for s in won.values():
        stream.append(s)
    loser = _loser_keyframe(objects, host, 0, snap(host, 0, tag="b", shift_s=-86_400))
    assert loser < stream.entry(0).key, "the loser's key must sort first (the bug's pick)"
    objects.delete(segment_key(host, 0))
    report = verify_stream(HostStream(objects, host, CONFIG), repair=True)
    acknowledged(objects, host, won)
    assert any(loser in p.key or loser in p.what for p in report.problems)
    assert objects.head(loser) is not None, "repair must keep both candidates"
    # The compactor, past the raw age and the orphan age, loses none of the winner's data.
    for at in (T0 + 100 * HOUR, T0 + 200 * HOUR):
        Compactor(objects, CONFIG).run(now_ns=at)
    acknowledged(objects, host, won)


def test_repair_reports_an_undecidable_seq_conflict_and_keeps_both() -> None:
    """Two keyframes for seq 8 and no delta, segment and catalog to tell them apart:
    repair must not guess. Both objects stay, the conflict is a problem naming both,
    and the compactor deletes neither."""
    objects = MemoryStore()
    host = "h"
    stream = HostStream(objects, host, CONFIG)
    for i in range(9):
        stream.append(snap(host, i))  # group 0: seqs 0-7, group 8: keyframe 8 alone
    winner = stream.entry(8).key
    loser = _loser_keyframe(objects, host, 8, snap(host, 8, tag="b", shift_s=-86_400))
    objects.delete(segment_key(host, 8))
    report = verify_stream(HostStream(objects, host, CONFIG), repair=True)
    conflict = [p for p in report.problems if winner in p.what + p.key and loser in p.what + p.key]
    assert conflict, report.problems
    assert objects.head(winner) is not None and objects.head(loser) is not None
    for at in (T0 + 100 * HOUR, T0 + 200 * HOUR):
        Compactor(objects, CONFIG).run(now_ns=at)
    assert objects.head(winner) is not None and objects.head(loser) is not None


def test_two_racing_imports_then_lost_index_keep_the_acknowledged_group(tmp_path: Path) -> None:
    """The issue's case through the CLI: the acknowledged import's group comes back
    whole after the segment is lost and ``verify --repair`` runs."""
    store_dir = tmp_path / "store"
    store = f"file://{store_dir}"
    big = write_csv(tmp_path / "big.csv", 3_601)
    done = cli("import", str(big), "--host", "h", "--window", "60", "--store", store)
    assert done.returncode == 0, done.stderr
    objects = FileStore(store_dir)
    stream = HostStream(objects, "h")
    before = [stream.get(e.seq) for e in stream.entries()]
    rows = sum(s.sample_count for s in before)
    # the other import's keyframe for seq 0, lost to the first, named to sort before it
    small = write_csv(tmp_path / "small.csv", 61, start_s=1_767_225_600 - 86_400)
    other = cli("import", str(small), "--host", "h2", "--window", "60", "--store", store)
    assert other.returncode == 0, other.stderr
    alien = HostStream(objects, "h2").get(0)
    lost = ProfileSnapshot.trusted(
        host="h", seq=0, window_start=alien.window_start, window_end=alien.window_end,
        fingerprint=alien.fingerprint, labels=alien.labels, metadata=alien.metadata,
        metrics=alien.metrics,
    )  # fmt: skip
    loser = _loser_keyframe(objects, "h", 0, lost)
    assert loser < stream.entry(0).key, "the loser's key must sort first (the bug's pick)"
    objects.delete(segment_key("h", 0))
    cli("verify", "--repair", "--host", "h", "--store", store)
    stream = HostStream(objects, "h")
    after = [stream.get(e.seq) for e in stream.entries()]
    assert sum(s.sample_count for s in after) == rows
    assert after == before


# --------------------------------------------------------------------------- 3: rolled back


def test_rolled_back_segment_is_reported_and_repaired_never_collected() -> None:
    """An older valid version of a segment copied over the current one: verify reports
    the entries it lost (exit 1), repair re-indexes them, the compactor never deletes
    them meanwhile."""
    objects = MemoryStore()
    host = "h"
    stream = HostStream(objects, host, CONFIG)
    expected = {i: snap(host, i) for i in range(14)}
    for i in range(5):
        stream.append(expected[i])
    old = objects.get(segment_key(host, 0)).data  # group 0 with seqs 0-4
    for i in range(5, 14):
        stream.append(expected[i])
    objects.put(segment_key(host, 0), old)
    report = verify_stream(HostStream(objects, host, CONFIG))
    lost = {parse_data_key(p.key).seq for p in report.problems if parse_data_key(p.key)}
    assert lost == {5, 6, 7}, report.problems
    assert not report.ok
    Compactor(objects, CONFIG).run(now_ns=T0 + 100 * HOUR)  # marks nothing acknowledged
    Compactor(objects, CONFIG).run(now_ns=T0 + 200 * HOUR)  # would delete marked orphans
    report = verify_stream(HostStream(objects, host, CONFIG), repair=True)
    acknowledged(objects, host, expected)
    assert verify_stream(HostStream(objects, host, CONFIG)).ok


# --------------------------------------------------------------------------- 4: symlinks


def test_symlinked_date_directory_is_listed_and_never_costs_the_index(tmp_path: Path) -> None:
    """A date directory moved to another disk and symlinked back: listing and reading
    agree, so verify finds no problem and repair deletes nothing."""
    root, elsewhere = tmp_path / "store", tmp_path / "other-disk"
    objects = FileStore(root)
    host = "h"
    stream = HostStream(objects, host, CONFIG)
    expected = {i: snap(host, i) for i in range(20)}
    for s in expected.values():
        stream.append(s)
    day = next((root / "raw" / host).glob("*/*/*"))
    elsewhere.mkdir()
    moved = elsewhere / day.name
    day.rename(moved)
    day.symlink_to(moved, target_is_directory=True)
    report = verify_stream(HostStream(objects, host, CONFIG))
    assert report.ok, report.problems[:3]
    verify_stream(HostStream(objects, host, CONFIG), repair=True)
    acknowledged(objects, host, expected)
    done = cli("export", "--host", host, "--store", f"file://{root}")
    assert done.returncode == 0 and done.stdout.count("\n") > 20 * 30, done.stderr


def test_repair_never_deletes_a_segment_whose_objects_it_could_not_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever makes a listing miss objects that reads still find, repair keeps the
    segment naming them (and says why) instead of deleting it."""
    objects = MemoryStore()
    host = "h"
    stream = HostStream(objects, host, CONFIG)
    expected = {i: snap(host, i) for i in range(12)}
    for s in expected.values():
        stream.append(s)
    real_list = objects.list
    monkeypatch.setattr(
        objects, "list", lambda prefix: iter([] if prefix.startswith("raw/") else real_list(prefix))
    )
    report = verify_stream(HostStream(objects, host, CONFIG), repair=True)
    monkeypatch.undo()
    assert not report.ok
    acknowledged(objects, host, expected)


def test_a_repair_that_loses_its_lease_writes_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A repair slow enough for its lease to expire and be taken by a recorder stops at
    its next write (the lease's renewal fails) and says so; it is not an exception."""
    from snapcloud.coordination import Lease
    from snapcloud.errors import LeaseHeld

    objects = MemoryStore()
    host = "h"
    stream = HostStream(objects, host, CONFIG)
    for i in range(10):
        stream.append(snap(host, i))
    objects.delete(segment_key(host, 8))

    def taken(self: Lease) -> None:
        raise LeaseHeld(f"lease {self.key} was lost: now held by a recorder", key=self.key)

    monkeypatch.setattr(Lease, "keep", taken)
    report = verify_stream(HostStream(objects, host, CONFIG), repair=True)
    assert [p.kind for p in report.problems if "repair stopped" in p.what] == ["not repaired"]
    assert objects.head(segment_key(host, 8)) is None  # nothing written after the loss
