"""The sample journal: a recorder killed mid-window loses at most the tick in progress.

Unit tests of the file, recorder runs on a fake clock that die mid-window (an exception
out of a collector stands for the kill), and real processes killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from snapcloud.backends import MemoryStore
from snapcloud.collectors import Sample
from snapcloud.models import MetricSeries, ProfileSnapshot
from snapcloud.recorder import Recorder, RecorderConfig
from snapcloud.store import Repository
from tests.recorder.fakes import WALL0_NS, FakeClock, FakeCollector
from tests.recorder.test_cli_record import env, record_cmd, wait_for

HOST = "node-1"
MS = 10**6
JOURNAL_NAME = "journal"


def Journal(*args: object, **kw: object) -> Any:
    """The journal, imported on use: the issue cases below run (and fail) without it."""
    from snapcloud.recorder._journal import Journal as journal

    return journal(*args, **kw)


def Tick(*args: object) -> Any:
    from snapcloud.recorder._sampler import Tick as tick_type

    return tick_type(*args)


class Killed(BaseException):
    """Stands for SIGKILL in-process: nothing after it runs in the sampler."""


def config(tmp_path: Path, **kw: object) -> RecorderConfig:
    base: dict[str, object] = {
        "interval_s": 0.1,
        "window_s": 3.0,
        "fingerprint": "bench",
        "spool_dir": tmp_path / "spool",
        "flush_timeout_s": 5.0,
        "lease_wait_s": 5.0,
    }
    base.update(kw)
    return RecorderConfig(**base)  # type: ignore[arg-type]


def stored(objects: MemoryStore) -> list[ProfileSnapshot]:
    stream = Repository(objects).stream(HOST, create=True)
    return [stream.get(e.seq) for e in stream.entries()]


def no_duplicates(snaps: list[ProfileSnapshot]) -> None:
    seen: Counter[tuple[str, int]] = Counter()
    for s in snaps:
        for m in s.metrics:
            seen.update((m.name, t) for t in m.timestamps.tolist())
    assert max(seen.values()) == 1, "a (metric, timestamp) stored twice"


# ------------------------------------------------------------------ the file


def tick(ts: int, *values: float) -> Tick:
    return Tick(ts, 0, [Sample(f"m{i}", v, "gauge", "u") for i, v in enumerate(values)])


def test_ticks_round_trip_bit_for_bit(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    odd = np.array([0x7FF8_0000_DEAD_BEEF], dtype=np.int64).view(np.float64)[0]  # a NaN payload
    ticks = [tick(1, 1.5, -0.0), tick(2, odd, float("inf")), Tick(3, 0, [], 2, 1, True)]
    for t in ticks:
        j.tick(t)
    j.close()
    got = Journal(tmp_path).replay()
    assert [t.ts for t in got.ticks] == [1, 2, 3] and got.sealed is None
    bits = [np.float64(s.value).view(np.int64) for t in got.ticks for s in t.samples]
    want = [np.float64(s.value).view(np.int64) for t in ticks for s in t.samples]
    assert bits == want
    assert (got.ticks[2].skipped, got.ticks[2].errors, got.ticks[2].late) == (2, 1, True)


def test_a_torn_tail_is_cut_off_and_appending_goes_on(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    for ts in (1, 2, 3):
        j.tick(tick(ts, float(ts)))
    j.close()
    path = tmp_path / JOURNAL_NAME
    whole = path.read_bytes()
    path.write_bytes(whole[:-5])  # the last record cut short by the kill
    j2 = Journal(tmp_path)
    assert [t.ts for t in j2.replay().ticks] == [1, 2]
    j2.tick(tick(4, 4.0))  # appended after the cut, not after the torn bytes
    j2.close()
    assert [t.ts for t in Journal(tmp_path).replay().ticks] == [1, 2, 4]
    flipped = bytearray(path.read_bytes())
    flipped[-3] ^= 0xFF  # bit rot in the last record: its CRC fails, reading stops there
    path.write_bytes(bytes(flipped))
    assert [t.ts for t in Journal(tmp_path).replay().ticks] == [1, 2]


def test_fsync_schedule(tmp_path: Path) -> None:
    now = [0.0]
    j = Journal(tmp_path, fsync_every_s=5.0, clock=lambda: now[0])
    for second in range(12):
        now[0] = float(second)
        j.tick(tick(second, 1.0))
    assert j.fsyncs == 2  # at 5 s and at 10 s
    j.seal(ProfileSnapshot(HOST, [], window_start=0, window_end=1))
    assert j.fsyncs == 3  # every seal


# ------------------------------------------------------------------ a recorder dies mid-window


def dying_collector(clock: FakeClock, at: int) -> FakeCollector:
    def die(k: int) -> None:
        if k == at:
            raise Killed

    return FakeCollector(clock, on_collect=die)


def test_a_killed_run_s_ticks_are_replayed_into_the_next_run_s_first_window(
    tmp_path: Path,
) -> None:
    """Was: killed 12 ticks into a window, the next run kept none of them."""
    objects = MemoryStore()
    clock = FakeClock()  # first tick at +0.4 s; the window is [0, 3 s)
    with pytest.raises(Killed):
        Recorder(
            Repository(objects), HOST, [dying_collector(clock, 12)], config(tmp_path), clock=clock
        ).run(duration=10)
    assert stored(objects) == []  # nothing sealed: the window was open
    # the next run starts 0.2 s after the last tick, in the same window
    clock2 = FakeClock(wall_offset_ns=1_650 * MS)
    c2 = FakeCollector(clock2)
    c2.calls = 100
    Recorder(Repository(objects), HOST, [c2], config(tmp_path), clock=clock2).run(duration=2.0)
    snaps = stored(objects)
    no_duplicates(snaps)
    first = snaps[0]
    ticks = first.metric("fake.tick")
    want = [WALL0_NS + (400 + 100 * k) * MS for k in range(12)]
    want += [WALL0_NS + (1700 + 100 * k) * MS for k in range(13)]
    assert ticks.timestamps.tolist() == want
    assert ticks.values.tolist()[:12] == [float(k) for k in range(12)]  # the killed run's
    assert first.window_start == WALL0_NS + 400 * MS and first.window_end == WALL0_NS + 3000 * MS
    assert first.metadata["recovered_ticks"] == 12 and first.metadata["samples"] == 25
    assert not first.metadata["partial"]
    assert not (tmp_path / "spool" / JOURNAL_NAME).read_bytes()  # emptied once spooled


def test_ticks_of_an_older_window_are_sealed_as_a_partial_window_of_their_own(
    tmp_path: Path,
) -> None:
    objects = MemoryStore()
    clock = FakeClock()
    with pytest.raises(Killed):
        Recorder(
            Repository(objects), HOST, [dying_collector(clock, 12)], config(tmp_path), clock=clock
        ).run(duration=10)
    clock2 = FakeClock(wall_offset_ns=60_000 * MS)  # a minute later
    Recorder(
        Repository(objects), HOST, [FakeCollector(clock2)], config(tmp_path), clock=clock2
    ).run(duration=1.0)
    snaps = stored(objects)
    no_duplicates(snaps)
    recovered = snaps[0]
    assert recovered.metric("fake.tick").values.tolist() == [float(k) for k in range(12)]
    assert recovered.metadata["partial"] and recovered.metadata["recovered_ticks"] == 12
    assert recovered.window_end == WALL0_NS + 1600 * MS  # one interval after its last tick
    assert snaps[1].window_start >= WALL0_NS + 60_000 * MS


def sealed_window(sid: str) -> ProfileSnapshot:
    ts = WALL0_NS + np.arange(5) * 100 * MS
    return ProfileSnapshot(
        HOST,
        [MetricSeries("fake.tick", ts, np.arange(5.0))],
        window_start=int(ts[0]),
        window_end=int(ts[-1]) + 100 * MS,
        fingerprint="bench",
        metadata={"interval_ms": 100.0, "spool_id": sid, "samples": 5},
    )


@pytest.mark.parametrize("uploaded", [False, True])
def test_killed_between_sealing_and_spooling(tmp_path: Path, uploaded: bool) -> None:
    """The journal says a window was sealed; the spool does not have it: spooled again,
    and stored once whether or not the first run had uploaded it already."""
    objects = MemoryStore()
    snap = sealed_window("c" * 32)
    if uploaded:
        Repository(objects).stream(HOST, create=True).append(snap)
    (tmp_path / "spool").mkdir()
    j = Journal(tmp_path / "spool")
    for k in range(5):
        j.tick(Tick(int(snap.window_start) + k * 100 * MS, snap.window_start, []))
    j.seal(snap)
    j.close()
    clock = FakeClock(wall_offset_ns=10_000 * MS)
    Recorder(Repository(objects), HOST, [FakeCollector(clock)], config(tmp_path), clock=clock).run(
        duration=0.5
    )
    ids = [s.metadata["spool_id"] for s in stored(objects)]
    assert ids.count("c" * 32) == 1
    assert stored(objects)[0] == snap.with_seq(0)


# ------------------------------------------------------------------ real processes, SIGKILL

pytestmark_posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _journal_ticks(spool: Path) -> list[int]:
    return [t.ts for t in Journal(spool).replay().ticks]


@pytestmark_posix
def test_sigkill_mid_window_then_restart_keeps_every_journaled_tick(tmp_path: Path) -> None:
    """A real recorder, SIGKILLed 3 s into a 60 s window: the next run stores those ticks."""
    spool, store = tmp_path / "spool", tmp_path / "store"
    args = ("--interval", "0.2", "--window", "60", "--no-gpu", "--fingerprint", "kill")
    proc = subprocess.Popen(
        record_cmd(*args, "--store", f"file://{store}", "--spool-dir", str(spool)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=tmp_path,
    )  # fmt: skip
    journal = spool / JOURNAL_NAME
    wait_for(lambda: journal.exists() and journal.stat().st_size > 0, 30, proc)
    started = time.time_ns()
    time.sleep(3.0)
    proc.send_signal(signal.SIGKILL)
    killed = time.time_ns()
    proc.communicate(timeout=10)
    ticks = _journal_ticks(spool)
    # every tick of the open window but the one in progress reached the journal (a window
    # sealed on the minute while we waited is in the spool, not the journal)
    since = max(started, ticks[0] // (60 * 10**9) * 60 * 10**9)
    assert len(ticks) >= (killed - since) // (200 * MS) - 1, (len(ticks), killed - since)
    assert killed - ticks[-1] <= 2 * 200 * MS + 300 * MS  # at most an interval (and jitter)
    done = subprocess.run(
        record_cmd(*args, "--duration", "1", "--store", f"file://{store}", "--spool-dir",
                   str(spool)),
        capture_output=True, text=True, timeout=60, env=env(), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    repo = Repository.open(f"file://{store}")
    stream = repo.stream("rec-test-1")
    snaps = [stream.get(e.seq) for e in stream.entries()]
    no_duplicates(snaps)
    got = {t for s in snaps for t in s.metric("recorder.late_ms").timestamps.tolist()}
    assert set(ticks) <= got, "a journaled tick was lost"
    assert sum(int(s.metadata.get("recovered_ticks", 0)) for s in snaps) == len(ticks)


_KILL_AT = """
import os, signal, sys
import snapcloud.cli._record
from snapcloud.recorder import _journal, _spool
point = os.environ["KILL_AT"]
if point == "after-seal":
    seal = _journal.Journal.seal
    def dying_seal(self, snapshot):
        seal(self, snapshot)
        os.kill(os.getpid(), signal.SIGKILL)
    _journal.Journal.seal = dying_seal
else:
    put = _spool.Spool.put
    def dying_put(self, snapshot):
        path = put(self, snapshot)
        os.kill(os.getpid(), signal.SIGKILL)
    _spool.Spool.put = dying_put
from snapcloud.cli import main
sys.exit(main())
"""


@pytestmark_posix
@pytest.mark.parametrize("point", ["after-seal", "after-spool-put"])
def test_sigkill_while_sealing_stores_the_window_once(tmp_path: Path, point: str) -> None:
    spool, store = tmp_path / "spool", tmp_path / "store"
    common = ("--interval", "0.1", "--window", "1", "--no-gpu", "--fingerprint", "kill")
    common += ("--store", f"file://{store}", "--spool-dir", str(spool))
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_AT, "record", "--host", "rec-test-1", *common],
        capture_output=True, text=True, timeout=60, env={**env(), "KILL_AT": point}, cwd=tmp_path,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    replay = Journal(spool).replay()
    assert replay.sealed is not None  # the journal knows the window it was sealing
    sid = replay.sealed.metadata["spool_id"]
    done = subprocess.run(
        record_cmd(*common, "--duration", "0.5"),
        capture_output=True, text=True, timeout=60, env=env(), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stream = Repository.open(f"file://{store}").stream("rec-test-1")
    snaps = [stream.get(e.seq) for e in stream.entries()]
    assert [s.metadata["spool_id"] for s in snaps].count(sid) == 1
    no_duplicates(snaps)
    assert os.path.getsize(spool / JOURNAL_NAME) >= 0
