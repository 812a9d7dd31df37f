"""Crash consistency: real ``snapcloud`` processes SIGKILLed at hundreds of points.

Three jobs, each run as the real CLI in a child process (``killpoints``: a fork
server, so that a child costs a fork instead of an interpreter start-up):

- ``snapcloud import`` (40 one-second windows, groups of 6): killed before every
  mutating request of a clean run, after the last one, and at seeded random
  times. Acknowledged means exit 0, so the rerun must finish and leave every
  window stored exactly once, bit for bit, as an uninterrupted import would.
- ``snapcloud compact`` (two hosts after two earlier runs, so the run hard-deletes,
  compresses, archives, expires and marks): killed before every mutating request
  and at random times. The half-done state must read correctly; the rerun (a
  later run, after the dead compactor's lease expired) must end in exactly the
  bytes of an uninterrupted run.
- ``snapcloud record`` (windows of 0.25 s, CPU collector): killed before and after
  every mutating request (after: the store applied it, the reply is lost, the
  spool file is still there), halfway through writing a spool file, before a
  spool file's rename, after it, and at random times. Acknowledged means fsynced
  in the spool (``Spool.put`` returned: the ``killpoints`` witness copies each such
  file); the restart must upload every acknowledged window exactly once, bit for
  bit.

After every kill ``snapcloud verify --json`` must report no problem (no index
entry without its object, no checksum mismatch); after the rerun, verify again,
and when orphans are left, two ``snapcloud compact`` runs (the second past the
orphan age) must collect them without touching the data. File stores live in
``/dev/shm`` when it exists (fsync costs nothing there, and a SIGKILL does not
lose the page cache anyway); a sample of points runs against the moto server
over HTTP, and one through a fresh interpreter instead of a fork.

Kill points are counted from the children that actually died at them; the last
test asserts at least 200. Randomness is seeded: ``SNAPCLOUD_TEST_SEED``.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from snapcloud import codec
from snapcloud.backends import FileStore, MemoryStore, ObjectStore, open_store
from snapcloud.importers import import_files
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig
from snapcloud.recorder import Spool
from snapcloud.retention import Compactor
from snapcloud.store import HostStream
from tests.reliability.killpoints import ROOT, ForkServer, Outcome, child_env, fork_servers
from tests.retention.scenario import CONFIG, DAY, HOUR, T0, check_reads, write_host

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="POSIX only"),
]

SEED = int(os.environ.get("SNAPCLOUD_TEST_SEED", "20260101"))
NS = 10**9
SERVERS = 2  # the machine has 2 cores
RANDOM_KILLS = 8  # per job, at seeded random times
TALLY: dict[str, dict[str, int]] = {}  # job -> {"points": killed children, ...}
FIGURES = ("points", "tried", "orphans_after_kill", "orphans_after_rerun", "checked")


# ---------------------------------------------------------------------------- plumbing


@dataclass(frozen=True)
class Target:
    """A store as the CLI names it, and the same store opened here."""

    url: str
    endpoint: str | None = None

    def args(self) -> list[str]:
        return ["--store", self.url] + (["--endpoint-url", self.endpoint] if self.endpoint else [])

    def open(self) -> ObjectStore:
        return open_store(self.url, endpoint_url=self.endpoint)


@dataclass(frozen=True)
class Point:
    """A kill point: a ``killpoints`` spec, or a delay after which the parent kills."""

    spec: str | None = None
    after_s: float | None = None

    def __str__(self) -> str:
        return self.spec or f"time:{self.after_s:.3f}s"


@dataclass
class Result:
    point: Point
    killed: bool = False
    orphans_after_kill: int = 0  # objects no index names, as verify saw them after the kill
    orphans_after_rerun: int = 0  # the same after the rerun (then the next compactions run)
    checked: int = 0  # acknowledged snapshots read back bit-exact after the rerun
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch directory, in memory when the machine has /dev/shm."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        root = shm / f"snapcloud-kill-{uuid.uuid4().hex[:12]}"
        root.mkdir()
        try:
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("kill")


@pytest.fixture(scope="module")
def servers(work: Path) -> Iterator[list[ForkServer]]:
    with fork_servers(work / "servers", SERVERS) as found:
        yield found


def run_points(
    servers: Sequence[ForkServer],
    points: Sequence[Point],
    check: Callable[[ForkServer, Point, Result], None],
) -> list[Result]:
    """Run ``check`` for every point, on a bounded pool (one fork server per thread)."""
    free: queue.Queue[ForkServer] = queue.Queue()
    for s in servers:
        free.put(s)

    def one(point: Point) -> Result:
        result = Result(point)
        server = free.get()
        try:
            check(server, point, result)
        except Exception:
            result.errors.append(traceback.format_exc(limit=-4))
        finally:
            free.put(server)
        return result

    with ThreadPoolExecutor(len(servers)) as pool:
        return list(pool.map(one, points))


def settle(job: str, results: list[Result], *, minimum: int) -> None:
    """Add the job's figures to the tally; fail with the first errors, naming the seed."""
    killed = sum(r.killed for r in results)
    tally = TALLY.setdefault(job, dict.fromkeys(FIGURES, 0))
    tally["points"] += killed
    tally["tried"] += len(results)
    for name in FIGURES[2:]:
        tally[name] += sum(getattr(r, name) for r in results)
    print(f"\n{job}: {killed} kill points executed of {len(results)} tried (seed {SEED})")
    failed = [r for r in results if r.errors]
    detail = "\n".join(f"--- kill point {r.point}:\n" + "\n".join(r.errors) for r in failed[:3])
    assert not failed, (
        f"{len(failed)} of {len(results)} kill points failed (seed {SEED}):\n{detail}"
    )
    assert killed >= minimum, f"{job}: only {killed} kill points reached (seed {SEED})"


def verify(
    server: ForkServer,
    target: Target,
    config: dict[str, Any] | None = None,
    *,
    after_kill: bool = False,
) -> list[Any]:
    """``snapcloud verify --json``; asserts it found no problem; returns its reports.

    ``after_kill``: an append killed between its object and its index leaves an object
    no index names, which verify must report as a lost entry (it cannot tell it from
    acknowledged data whose entry was lost); those alone are allowed, and the rerun
    reuses the object."""
    done = server.run(["verify", "--json", *target.args()], config=config)
    if after_kill and done.returncode == 2 and "no store at" in done.stderr:
        return []  # killed before its first write: verify never creates a store
    assert done.returncode in (0, 1), done.describe()
    reports: list[Any] = json.loads(done.stdout)
    allowed = {"lost entry"} if after_kill else set()
    problems = [(r["host"], p) for r in reports for p in r["problems"]]
    assert all(p["kind"] in allowed for _, p in problems), f"verify found: {problems[:5]}"
    assert done.returncode == (1 if problems else 0), done.describe()
    return reports


def orphans(reports: list[Any]) -> list[str]:
    return [key for r in reports for key in r["orphans"]]


def lost_entries(reports: list[Any]) -> int:
    """Objects a killed append left unindexed (verify's "lost entry" problems)."""
    return sum(p["kind"] == "lost entry" for r in reports for p in r["problems"])


def collect_orphans(
    server: ForkServer, target: Target, now_ns: int, config: dict[str, Any] | None = None
) -> None:
    """Two compactions, the second past the orphan age: verify then sees no orphan."""
    for at in (now_ns, now_ns + 2 * HOUR):
        done = server.run(["compact", "--now", str(at), *target.args()], config=config)
        assert done.returncode == 0, done.describe()
    left = orphans(verify(server, target, config))
    assert not left, f"orphans left after the next compactions: {left}"


def state(objects: ObjectStore) -> dict[str, bytes]:
    """Every object but the writer leases."""
    return {i.key: objects.get(i.key).data for i in objects.list("") if "/leases/" not in i.key}


def random_points(rng: random.Random, seconds: float, count: int = RANDOM_KILLS) -> list[Point]:
    return [Point(after_s=round(rng.uniform(0.0, seconds), 4)) for _ in range(count)]


def expect_killed(victim: Outcome, point: Point, result: Result) -> None:
    """A spec point must be reached (its job is deterministic enough to get there)."""
    result.killed = victim.killed
    if point.spec is not None:
        assert victim.self_killed, f"kill point not reached: {victim.describe()}"


def file_target(work: Path, name: str) -> Target:
    return Target(f"file://{work / name}")


def s3_target(endpoint: str) -> Target:
    import boto3

    bucket = f"kill-{uuid.uuid4().hex[:20]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return Target(f"s3://{bucket}/fleet", endpoint)


# ---------------------------------------------------------------------------- import

IMPORT_HOST = "imp-k"
IMPORT_WINDOWS = 40
IMPORT_CONFIG = {"keyframe_interval": 6}
# the import's last puts: a range hint for each keyframe group it sealed (the last stays open)
IMPORT_HINTS = -(-IMPORT_WINDOWS // IMPORT_CONFIG["keyframe_interval"]) - 1
IMPORT_T0_S = T0 // NS


def write_csvs(directory: Path, rng: np.random.Generator) -> list[Path]:
    """A wide nvidia-smi-like file (units, N/A holes, a counter) and a long file."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = IMPORT_WINDOWS * 10
    wide, long = directory / "gpu.csv", directory / "temp_c.csv"
    util = np.round(rng.normal(60, 15, rows), 1)
    power = np.round(rng.normal(250, 40, rows), 2)
    total = np.cumsum(rng.integers(0, 10_000, rows))
    lines = ["timestamp,util,power.draw [W],bytes_total"]
    for i in range(rows):
        cell = "N/A" if rng.random() < 0.05 else f"{util[i]}"
        lines.append(f"{IMPORT_T0_S + i / 10:.1f},{cell},{power[i]} W,{total[i]}")
    wide.write_text("\n".join(lines) + "\n")
    temps = rng.integers(30, 90, rows // 2)
    long.write_text(
        "timestamp,value\n"
        + "".join(f"{(T0 + i * 2 * 10**8)},{t}\n" for i, t in enumerate(temps.tolist()))
    )
    return [wide, long]


@pytest.fixture(scope="module")
def import_case(work: Path) -> tuple[list[Path], list[ProfileSnapshot]]:
    files = write_csvs(work / "csv", np.random.default_rng(SEED))
    snaps = import_files(IMPORT_HOST, files, window_ns=NS)
    assert len(snaps) == IMPORT_WINDOWS
    return files, [s.with_seq(i) for i, s in enumerate(snaps)]


def import_argv(target: Target, files: list[Path]) -> list[str]:
    return ["import", "--host", IMPORT_HOST, "--window", "1", *target.args(), *map(str, files)]


def check_stream(
    objects: ObjectStore, host: str, expected: list[ProfileSnapshot], config: SnapshotConfig
) -> int:
    """The stream holds exactly ``expected`` at seqs 0.., bit for bit."""
    stream = HostStream(objects, host, config)
    seqs = [e.seq for e in stream.entries()]
    assert seqs == list(range(len(expected))), f"stream seqs {seqs} for {len(expected)} windows"
    for snap in expected:
        got = stream.get(snap.seq)
        assert got == snap and got.checksum == snap.checksum, f"seq {snap.seq} differs"
    return len(expected)


def check_import_point(
    server: ForkServer,
    point: Point,
    result: Result,
    target: Target,
    case: tuple[list[Path], list[ProfileSnapshot]],
) -> None:
    files, expected = case
    argv = import_argv(target, files)
    victim = server.run(argv, kill=point.spec, kill_after_s=point.after_s, config=IMPORT_CONFIG)
    expect_killed(victim, point, result)
    if not victim.killed:
        assert victim.returncode == 0, victim.describe()
    reports = verify(server, target, IMPORT_CONFIG, after_kill=True)
    result.orphans_after_kill = len(orphans(reports)) + lost_entries(reports)
    rerun = server.run(argv, config=IMPORT_CONFIG)
    assert rerun.returncode == 0, f"the rerun after {point} failed: {rerun.describe()}"
    config = SnapshotConfig(**IMPORT_CONFIG)
    objects = target.open()
    result.checked = check_stream(objects, IMPORT_HOST, expected, config)
    if result.orphans_after_kill:
        result.orphans_after_rerun = len(orphans(verify(server, target, IMPORT_CONFIG)))
    if result.orphans_after_rerun:
        collect_orphans(server, target, expected[-1].window_end + 10 * 60 * NS, IMPORT_CONFIG)
        check_stream(objects, IMPORT_HOST, expected, config)


def test_import_killed_anywhere_then_rerun_stores_every_window_once(
    servers: list[ForkServer], work: Path, import_case: tuple[list[Path], list[ProfileSnapshot]]
) -> None:
    files, expected = import_case
    clean = file_target(work, "import-clean")
    done = servers[0].run(import_argv(clean, files), config=IMPORT_CONFIG)
    assert done.returncode == 0, done.describe()
    check_stream(clean.open(), IMPORT_HOST, expected, SnapshotConfig(**IMPORT_CONFIG))
    count = len(done.mutations)
    # object + segment each, the range hints, the catalog
    assert count == 2 * IMPORT_WINDOWS + IMPORT_HINTS + 1, done.mutations
    print(f"\nimport clean run: {count} mutating requests")
    rng = random.Random(SEED)
    points = [Point(f"mut:{n}:before") for n in range(1, count + 1)]
    points += [Point(f"mut:{count}:after"), *random_points(rng, done.seconds)]
    targets = {p: file_target(work, f"import-{i}") for i, p in enumerate(points)}
    results = run_points(
        servers, points, lambda s, p, r: check_import_point(s, p, r, targets[p], import_case)
    )
    settle("import", results, minimum=count + 1)
    # and the same import run again after a complete one stores nothing twice
    again = servers[0].run(import_argv(clean, files), config=IMPORT_CONFIG)
    assert again.returncode == 0, again.describe()
    check_stream(clean.open(), IMPORT_HOST, expected, SnapshotConfig(**IMPORT_CONFIG))


def test_append_windows_appends_only_what_an_interrupted_import_left_out(
    import_case: tuple[list[Path], list[ProfileSnapshot]],
) -> None:
    from snapcloud.importers.csv import append_windows

    _, expected = import_case
    objects = MemoryStore()
    config = SnapshotConfig(**IMPORT_CONFIG)
    stream = HostStream(objects, IMPORT_HOST, config)
    for snap in expected[:14]:
        stream.append(snap)
    # The killed run stored seqs 0..12 and died between the object of seq 13 and its
    # index entry: the segment of group 12 names seq 12 only, seq 13 is an orphan.
    objects.delete(f"index/{IMPORT_HOST}/raw/000000000012.json")
    HostStream(objects, IMPORT_HOST, config).append(expected[12])
    assert HostStream(objects, IMPORT_HOST, config).next_seq == 13
    done = append_windows(HostStream(objects, IMPORT_HOST, config), expected)
    assert [e.seq for e in done.already_stored] == list(range(13))
    assert [e.seq for e in done.appended] == list(range(13, len(expected)))
    check_stream(objects, IMPORT_HOST, expected, config)
    # exactly once by sample: a window whose samples are all stored (a subset of one) is
    # not appended again; one with other values is new data, appended
    first = expected[0].with_seq(0)
    subset = ProfileSnapshot(
        IMPORT_HOST, first.metrics[:1], window_start=first.window_start, window_end=first.window_end
    )
    same = append_windows(HostStream(objects, IMPORT_HOST, config), [subset])
    assert not same.appended and [e.seq for e in same.already_stored] == [0]
    m = first.metrics[0]
    changed = ProfileSnapshot(
        IMPORT_HOST,
        [MetricSeries(m.name, m.timestamps, m.values + 1.0, kind=m.kind, unit=m.unit)],
        window_start=first.window_start,
        window_end=first.window_end,
    )
    again = append_windows(HostStream(objects, IMPORT_HOST, config), [changed])
    assert [e.seq for e in again.appended] == [len(expected)] and not again.already_stored


def test_import_killed_on_s3_then_rerun(
    servers: list[ForkServer],
    moto_server: str,
    import_case: tuple[list[Path], list[ProfileSnapshot]],
) -> None:
    rng = random.Random(SEED + 1)
    count = 2 * IMPORT_WINDOWS + IMPORT_HINTS + 1
    points = [Point(f"mut:{n}:{phase}") for n, phase in ((1, "before"), (count, "after"))]
    points += [
        Point(f"mut:{n}:{rng.choice(['before', 'after'])}") for n in rng.sample(range(2, count), 3)
    ]
    targets = {p: s3_target(moto_server) for p in points}
    results = run_points(
        servers, points, lambda s, p, r: check_import_point(s, p, r, targets[p], import_case)
    )
    settle("import", results, minimum=len(points))


def test_a_fresh_interpreter_dies_at_its_kill_point(
    servers: list[ForkServer], work: Path, import_case: tuple[list[Path], list[ProfileSnapshot]]
) -> None:
    """The same bootstrap without the fork server: ``python -m tests.reliability.killpoints``."""
    files, expected = import_case
    target = file_target(work, "import-fresh")
    log = work / "fresh.log"
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.reliability.killpoints", "--kill", "mut:7:after",
            "--log", str(log), "--config", json.dumps(IMPORT_CONFIG),
            "--", *import_argv(target, files),
        ],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr
    lines = log.read_text().splitlines()
    assert lines[-1].startswith("KILL mut:7:after at put "), lines
    result = Result(Point("mut:7:after"), killed=True)
    try:
        verify(servers[0], target, IMPORT_CONFIG, after_kill=True)
        rerun = servers[0].run(import_argv(target, files), config=IMPORT_CONFIG)
        assert rerun.returncode == 0, rerun.describe()
        check_stream(target.open(), IMPORT_HOST, expected, SnapshotConfig(**IMPORT_CONFIG))
    except AssertionError:
        result.errors.append(traceback.format_exc(limit=-3))
    settle("import", [result], minimum=1)


# ---------------------------------------------------------------------------- compact

NOW = T0 + 3 * DAY + 7 * HOUR  # hard deletes, compression, an archive, expiry, orphan marks
COMPACT_CONFIG = CONFIG.model_dump()
HOSTS = ("gpu-1", "gpu-2")


@dataclass
class CompactCase:
    template: Path
    before: dict[str, bytes]
    after: dict[str, bytes]
    originals: dict[str, list[ProfileSnapshot]]
    mutations: int
    seconds: float


@pytest.fixture(scope="module")
def compact_case(work: Path, servers: list[ForkServer]) -> CompactCase:
    """Two hosts after two earlier runs; the clean run's mutations and end state."""
    objects = MemoryStore()
    originals = {
        "gpu-1": write_host(objects, "gpu-1", 72, step_s=10),
        "gpu-2": write_host(objects, "gpu-2", 30, step_s=10, seed=5, start_ns=T0 - DAY),
    }
    Compactor(objects, CONFIG).run(T0 + DAY)
    Compactor(objects, CONFIG).run(T0 + 2 * DAY + 2 * HOUR)
    before = state(objects)
    template = work / "compact-template"
    files = FileStore(template)
    for key, data in before.items():
        files.put(key, data)
    clean = file_target(work, "compact-clean")
    shutil.copytree(template, work / "compact-clean")
    done = servers[0].run(compact_argv(clean), config=COMPACT_CONFIG)
    assert done.returncode == 0, done.describe()
    after = state(clean.open())
    assert after != before
    return CompactCase(template, before, after, originals, len(done.mutations), done.seconds)


def compact_argv(target: Target, now: int = NOW) -> list[str]:
    return ["compact", "--now", str(now), *target.args()]


def load(target: Target, case: CompactCase, work: Path) -> None:
    if target.url.startswith("file://"):
        shutil.copytree(case.template, target.url[len("file://") :])
        return
    objects = target.open()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: objects.put(*kv), case.before.items()))


def check_compact_point(
    server: ForkServer, point: Point, result: Result, target: Target, case: CompactCase
) -> None:
    argv = compact_argv(target)
    victim = server.run(argv, kill=point.spec, kill_after_s=point.after_s, config=COMPACT_CONFIG)
    expect_killed(victim, point, result)
    if not victim.killed:
        assert victim.returncode == 0, victim.describe()
    result.orphans_after_kill = len(orphans(verify(server, target, COMPACT_CONFIG)))
    objects = target.open()
    for host in HOSTS:  # readers are fine in the half-done state
        seen = check_reads(objects, host, case.originals[host], NOW)
        result.checked += len(seen["full"]) + len(seen["archive"])
    # the next run comes after the dead compactor's lease (600 s) expired
    rerun = server.run(argv, lease_skew=3600, config=COMPACT_CONFIG)
    assert rerun.returncode == 0, f"the rerun after {point} failed: {rerun.describe()}"
    got = state(objects)
    if got != case.after:
        extra = sorted(set(got) - set(case.after))[:5]
        missing = sorted(set(case.after) - set(got))[:5]
        changed = sorted(k for k in set(got) & set(case.after) if got[k] != case.after[k])[:5]
        raise AssertionError(
            f"state after the rerun differs from a clean run: extra {extra}, "
            f"missing {missing}, changed {changed}"
        )


def test_compactor_killed_anywhere_then_rerun_ends_in_the_clean_state(
    servers: list[ForkServer], work: Path, compact_case: CompactCase
) -> None:
    case = compact_case
    # the clean end state reads right, and the next compaction collects what is left
    clean = file_target(work, "compact-clean")
    for host in HOSTS:
        check_reads(clean.open(), host, case.originals[host], NOW)
    assert not orphans(verify(servers[0], clean, COMPACT_CONFIG)), "a clean run left orphans"
    collect_orphans(servers[0], clean, NOW + HOUR, COMPACT_CONFIG)

    rng = random.Random(SEED + 2)
    count = case.mutations
    print(f"\ncompact clean run: {count} mutating requests")
    points = [Point(f"mut:{n}:before") for n in range(1, count + 1)]
    points += [Point(f"mut:{count}:after"), *random_points(rng, case.seconds)]
    targets = {p: file_target(work, f"compact-{i}") for i, p in enumerate(points)}
    for t in targets.values():
        load(t, case, work)
    results = run_points(
        servers, points, lambda s, p, r: check_compact_point(s, p, r, targets[p], case)
    )
    settle("compact", results, minimum=count + 1)


def test_compactor_killed_on_s3_then_rerun(
    servers: list[ForkServer], moto_server: str, work: Path, compact_case: CompactCase
) -> None:
    rng = random.Random(SEED + 3)
    points = [
        Point(f"mut:{n}:before")
        for n in sorted(rng.sample(range(1, compact_case.mutations + 1), 3))
    ]
    targets = {p: s3_target(moto_server) for p in points}
    for t in targets.values():
        load(t, compact_case, work)
    results = run_points(
        servers, points, lambda s, p, r: check_compact_point(s, p, r, targets[p], compact_case)
    )
    settle("compact", results, minimum=len(points))


# ---------------------------------------------------------------------------- record

REC_HOST = "rec-k"
REC_DURATION_S = 1.0
_SEALED = re.compile(r"sealed window \d{12}-([0-9a-f]{32})\.snap")


def record_argv(target: Target, spool: Path, duration: float) -> list[str]:
    return [
        "record", "--host", REC_HOST, "--interval", "0.05", "--window", "0.25",
        "--duration", str(duration), "--fingerprint", "killtest", "--no-gpu",
        "--spool-dir", str(spool), "--flush-timeout", "10", "--json", *target.args(),
    ]  # fmt: skip


def acknowledged_in_output(out: Outcome) -> set[str]:
    """Spool ids the recorder reported as sealed (stderr log lines, --json lines on stdout)."""
    ids = set(_SEALED.findall(out.stderr))
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            ids.add(json.loads(line)["spool_id"])
    return ids


def witnessed(directory: Path) -> dict[str, ProfileSnapshot]:
    """The snapshots ``Spool.put`` acknowledged, as the witness copied them."""
    out = {}
    for path in directory.glob("*.snap"):
        snap = codec.decode(path.read_bytes(), key=path.name)
        sid = Spool.spool_id(path)
        assert sid is not None and snap.metadata["spool_id"] == sid
        out[sid] = snap
    return out


def check_record_point(
    server: ForkServer, point: Point, result: Result, target: Target, work: Path
) -> None:
    spool, witness = work / "spool", work / "witness"
    victim = server.run(
        record_argv(target, spool, REC_DURATION_S),
        kill=point.spec,
        kill_after_s=point.after_s,
        witness=witness,
    )
    # A spec point can go unreached: this run sealed fewer windows or made fewer
    # requests than the counted one. It is not counted, and its run is still checked.
    result.killed = victim.killed
    if not victim.killed:
        assert victim.returncode == 0, victim.describe()
    reports = verify(server, target, after_kill=True)
    result.orphans_after_kill = len(orphans(reports)) + lost_entries(reports)
    at_kill = {Spool.spool_id(p) for p in spool.glob("*.snap")}
    reported = acknowledged_in_output(victim)
    restart = server.run(record_argv(target, spool, 0.3), witness=witness)
    assert restart.returncode == 0, f"the restart after {point} failed: {restart.describe()}"

    acked = witnessed(witness)
    objects = target.open()
    stream = HostStream(objects, REC_HOST)
    entries = list(stream.entries())
    assert [e.seq for e in entries] == list(range(len(entries)))
    stored = [stream.get(e.seq) for e in entries]
    ids = [str(s.metadata["spool_id"]) for s in stored]
    assert len(ids) == len(set(ids)), f"a window was stored twice: {ids}"
    lost = set(acked) - set(ids)
    assert not lost, f"acknowledged windows lost: {sorted(lost)}"
    assert reported <= set(acked), "a window was reported sealed before Spool.put returned"
    unknown = set(ids) - set(acked) - at_kill
    assert not unknown, f"stored windows nobody spooled: {sorted(unknown)}"
    for snap in stored:
        sid = str(snap.metadata["spool_id"])
        if sid in acked:
            want = acked[sid].with_seq(snap.seq)
            assert snap == want and snap.checksum == want.checksum, f"seq {snap.seq} differs"
            result.checked += 1
    assert list(spool.glob("*.snap")) == [], "the restart left windows in the spool"
    assert not list(spool.glob("quarantine/*")), "a spool file was quarantined"
    result.orphans_after_rerun = len(orphans(verify(server, target)))
    if result.orphans_after_rerun:
        collect_orphans(server, target, time.time_ns())


def recorder_points(rng: random.Random, mutations: int, spool_files: int) -> list[Point]:
    points = [
        Point(f"mut:{n}:{phase}") for n in range(1, mutations + 1) for phase in ("before", "after")
    ]
    points += [
        Point(f"spool:{n}:{phase}")
        for n in range(1, spool_files + 1)
        for phase in ("write", "rename", "dirsync")
    ]
    return points + random_points(rng, REC_DURATION_S + 0.6)


def test_recorder_killed_anywhere_then_restart_uploads_every_acknowledged_window_once(
    servers: list[ForkServer], work: Path
) -> None:
    clean_dir = work / "record-clean"
    clean_target = file_target(clean_dir, "store")
    done = servers[0].run(
        record_argv(clean_target, clean_dir / "spool", REC_DURATION_S), witness=clean_dir / "w"
    )
    assert done.returncode == 0, done.describe()
    assert len(witnessed(clean_dir / "w")) >= 3, done.describe()
    rng = random.Random(SEED + 4)
    points = recorder_points(rng, len(done.mutations), len(done.spool_writes))
    print(
        f"\nrecord clean run: {len(done.mutations)} mutating requests, "
        f"{len(done.spool_writes)} spool files"
    )
    dirs = {p: work / f"record-{i}" for i, p in enumerate(points)}
    results = run_points(
        servers,
        points,
        lambda s, p, r: check_record_point(s, p, r, file_target(dirs[p], "store"), dirs[p]),
    )
    settle("record", results, minimum=len(points) * 3 // 4)


def test_recorder_killed_on_s3_then_restart(
    servers: list[ForkServer], moto_server: str, work: Path
) -> None:
    points = [Point("mut:2:after"), Point("mut:4:before"), Point("spool:2:dirsync")]
    targets = {p: s3_target(moto_server) for p in points}
    dirs = {p: work / f"record-s3-{i}" for i, p in enumerate(points)}
    results = run_points(
        servers, points, lambda s, p, r: check_record_point(s, p, r, targets[p], dirs[p])
    )
    settle("record", results, minimum=2)


# ---------------------------------------------------------------------------- total


def test_at_least_200_kill_points_in_total() -> None:
    jobs = ("import", "compact", "record")
    if not all(job in TALLY for job in jobs):
        pytest.skip(f"only {sorted(TALLY)} ran; the total needs every job")
    total = sum(TALLY[job]["points"] for job in jobs)
    lines = [f"{job}: {TALLY[job]}" for job in jobs]
    print("\nkill points executed: " + "; ".join(lines) + f"; total {total} (seed {SEED})")
    assert total >= 200, lines
