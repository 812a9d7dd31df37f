"""Concurrency against a real moto S3 server over HTTP: many writers, one bucket.

- 20 host streams appended at once (20 threads; then 4 real processes), while
  catalog updates for the same hosts race each other and a compactor runs: no
  index entry and no catalog update is lost, everything reads back bit-exact,
  ``snapcloud verify`` is clean.
- Two writers on one host stream: the loser gets ``ConflictError``; nothing
  acknowledged is lost or stored twice.
- Two recorders for one host (in-process and as two ``snapcloud record``
  processes): the second is refused with ``LeaseHeld``; a dead holder's lease is
  taken over, a live one's only after it expires.
- Two compactors on one bucket: the second is refused; one whose lease was taken
  over stops at its next step and the data stays whole.

moto 5.2 checks ``If-Match`` / ``If-None-Match`` and then writes with nothing held
in between, so two racing conditional puts can both succeed on moto where S3
lets exactly one win. ``_atomic_moto_put_object`` serializes moto's PutObject
handler (the server runs in this process, so this also covers requests from the
child processes), as ``tests/backends/test_s3.py`` does: these tests are about
our clients, not about moto's window.

Randomness is seeded: ``SNAPCLOUD_TEST_SEED`` (printed in failure messages).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from snapcloud.backends import ForwardingStore, ObjectStore
from snapcloud.cli import main
from snapcloud.errors import ConflictError, LeaseHeld, SnapcloudError
from snapcloud.index import Catalog
from snapcloud.models import MetricSeries, ProfileSnapshot, SnapshotConfig
from snapcloud.recorder import Lease, Recorder, RecorderConfig, SealedWindow, lease_key
from snapcloud.retention import COMPACTOR_LEASE_KEY, Compactor, RetentionPolicy
from snapcloud.store import HostStream, Repository

SEED = int(os.environ.get("SNAPCLOUD_TEST_SEED", "20260101"))
ROOT = Path(__file__).resolve().parents[2]
NS = 10**9
HOUR = 3600 * NS
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
WINDOW_NS = 60 * NS
#: Groups of 3, raw 6 h: a compactor running "12 h later" compresses every sealed group.
CONFIG = SnapshotConfig(
    keyframe_interval=3,
    raw_max_age_ns=6 * HOUR,
    compressed_max_age_ns=24 * HOUR,
    archive_max_age_ns=48 * HOUR,
    delete_delay_ns=1 * HOUR,
)
#: Superseded raw objects are deleted by the very next run, so deletes race the writers too.
POLICY = RetentionPolicy.from_config(CONFIG, delete_delay_ns=0)
COMPACT_AT = T0 + 12 * HOUR  # well inside the compressed tier: no lossy archive step
PREFIX = "fleet"
_NAN_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_0000_0ABC))[0]


def why(extra: str = "") -> str:
    return f"seed {SEED} (SNAPCLOUD_TEST_SEED){'; ' + extra if extra else ''}"


#: PutObject requests the server saw, and how many it refused on a condition (412).
SERVER = {"puts": 0, "refused_412": 0}


@pytest.fixture(scope="module", autouse=True)
def _atomic_moto_put_object() -> Iterator[None]:
    """Make moto's PutObject decide its condition atomically, as S3 does (module docstring)."""
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    lock = threading.Lock()

    def put_object(self: Any) -> Any:
        with lock:
            SERVER["puts"] += 1
            try:
                return original(self)
            except Exception as exc:
                if type(exc).__name__ == "PreconditionFailed":
                    SERVER["refused_412"] += 1
                raise

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(S3Response, "put_object", put_object)
        yield


@pytest.fixture(autouse=True)
def _figures(request: pytest.FixtureRequest) -> Iterator[dict[str, object]]:
    """Per-test figures for docs/RELIABILITY.md, kept as the test's user properties
    (``--junitxml=F -o junit_family=legacy`` writes them out)."""
    before = dict(SERVER)
    figures: dict[str, object] = {}
    yield figures
    props = request.node.user_properties
    props.extend((f"server_{k}", v - before[k]) for k, v in SERVER.items())
    props.extend(figures.items())


# ---------------------------------------------------------------------- data and checks


def make_snapshots(
    host: str, count: int, *, seed: int = SEED, writer: str = "w"
) -> list[ProfileSnapshot]:
    """``count`` one-minute windows of ``host``: a decimal gauge with NaN holes (one with a
    payload) and -0.0, a counter, and full-precision noise. Deterministic per arguments."""
    rng = np.random.default_rng([seed, zlib.crc32(host.encode()), zlib.crc32(writer.encode())])
    out = []
    for i in range(count):
        start = T0 + i * WINDOW_NS
        ts = start + np.arange(60, dtype=np.int64) * NS
        gauge = np.round(rng.normal(50, 10, 60), 1)
        gauge[rng.integers(0, 60, 3)] = np.nan
        gauge[7], gauge[11] = -0.0, _NAN_PAYLOAD
        counter = np.cumsum(rng.integers(0, 1000, 60)).astype(np.float64) + i * 1e6
        metrics = [
            MetricSeries("cpu.util", ts, gauge, unit="%"),
            MetricSeries("net.rx_bytes", ts, counter, kind="counter", unit="B"),
            MetricSeries("noise", ts, rng.normal(0, 1, 60)),
        ]
        out.append(
            ProfileSnapshot(
                host,
                metrics,
                window_start=start,
                window_end=start + WINDOW_NS,
                fingerprint=f"conc-{writer}",
                labels={"rack": f"r{zlib.crc32(host.encode()) % 4}"},
                metadata={"writer": writer, "i": i},
            )
        )
    return out


def open_repo(endpoint: str, bucket: str) -> Repository:
    return Repository.open(f"s3://{bucket}/{PREFIX}", endpoint_url=endpoint, config=CONFIG)


def assert_stream_holds(repo: Repository, host: str, expected: dict[int, ProfileSnapshot]) -> None:
    """A fresh reader lists exactly ``expected``'s seqs and reads each back bit-exact."""
    stream = HostStream(repo.objects, host, CONFIG)
    seqs = [e.seq for e in stream.entries()]
    assert seqs == sorted(expected), why(f"host {host}: index lists {seqs}")
    for seq, snap in expected.items():
        want = snap.with_seq(seq)
        try:
            got = stream.get(seq)
        except SnapcloudError as exc:
            raise AssertionError(why(f"{host} seq {seq} unreadable: {exc!r}")) from exc
        assert got == want and got.checksum == want.checksum, why(f"{host} seq {seq} differs")


def assert_verify_clean(endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(
        ["verify", "--store", f"s3://{bucket}/{PREFIX}", "--endpoint-url", endpoint, "--json"]
    )
    out = capsys.readouterr()
    assert code == 0, why(f"snapcloud verify exited {code}: {out.out[-2000:]} {out.err[-2000:]}")


def tier_keys(endpoint: str, bucket: str, tier: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{PREFIX}/{tier}/"
    )
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


class CompactorLoop:
    """Runs the compactor over the bucket again and again on a thread until stopped.

    ``now`` is ``COMPACT_AT`` plus the real time elapsed, so orphan marks (1 h)
    never come due under a running append, while superseded objects
    (``delete_delay`` 0) are deleted by the next run.
    """

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self.runs = 0
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self._started = time.monotonic_ns()
        self._thread = threading.Thread(target=self._loop, name="compactor-loop", daemon=True)

    def now(self) -> int:
        return COMPACT_AT + time.monotonic_ns() - self._started

    def run_once(self) -> None:
        Compactor(self.objects, CONFIG, POLICY).run(now_ns=self.now())
        self.runs += 1

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.run_once()
            except BaseException as exc:  # kept and raised by the test
                self.errors.append(exc)
                return

    def __enter__(self) -> CompactorLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(120)


def run_threads(targets: list[Callable[[], None]], timeout: float = 120) -> list[BaseException]:
    """Start every target at once (a barrier), join them, return what they raised."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def go() -> None:
            try:
                barrier.wait(30)
                fn()
            except BaseException as exc:
                errors.append(exc)

        return go

    threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), why("a worker thread hung")
    return errors


# ---------------------------------------------------------------------- 20 host streams

HOSTS = [f"conc-{i:02d}" for i in range(20)]
WINDOWS = (
    7  # three keyframe groups (3, 3, 1): the first two are sealed and compacted under the writer
)
LABELERS = 4


def test_twenty_streams_in_threads_with_catalog_updates_and_a_compactor(
    s3_bucket: tuple[str, str], capsys: pytest.CaptureFixture[str], _figures: dict[str, object]
) -> None:
    endpoint, bucket = s3_bucket
    expected = {h: make_snapshots(h, WINDOWS) for h in HOSTS}
    acked: dict[str, dict[int, int]] = {h: {} for h in HOSTS}

    def writer(host: str) -> Callable[[], None]:
        def go() -> None:
            repo = open_repo(endpoint, bucket)
            stream = repo.stream(host, create=True)
            for snap in expected[host]:
                entry = stream.append(snap)
                acked[host][entry.seq] = entry.checksum
            repo.refresh_catalog(host)  # races the labelers' updates of the same entry

        return go

    def labeler(n: int) -> Callable[[], None]:
        def go() -> None:
            catalog = Catalog(open_repo(endpoint, bucket).objects)
            for host in HOSTS:  # all in the same order: they collide on each entry
                catalog.set_user_labels(host, {f"labeler.{n}": f"v{n}"})

        return go

    compactor_store = open_repo(endpoint, bucket).objects
    with CompactorLoop(compactor_store) as loop:
        errors = run_threads([writer(h) for h in HOSTS] + [labeler(n) for n in range(LABELERS)])
    assert not errors, why(f"workers raised {errors!r}")
    assert not loop.errors, why(f"compactor raised {loop.errors!r}")
    assert loop.runs >= 1
    _figures.update(concurrent_compactor_runs=loop.runs, appends=len(HOSTS) * WINDOWS)
    _figures.update(catalog_updates=len(HOSTS) * (LABELERS + 1))

    # Two more runs: compress what the last concurrent run missed, then delete what it marked.
    loop.run_once()
    loop.run_once()
    repo = open_repo(endpoint, bucket)
    for host in HOSTS:
        want = dict(enumerate(expected[host]))
        assert {s: want[s].with_seq(s).checksum for s in want} == acked[host], why(host)
        assert_stream_holds(repo, host, want)
    # Every sealed group left the raw tier (groups 0 and 1 of each host): compaction ran.
    assert len(tier_keys(endpoint, bucket, "compressed")) >= 2 * len(HOSTS)
    catalog = repo.catalog()
    assert catalog.hosts() == HOSTS
    for host in HOSTS:
        entry = repo.refresh_catalog(host)
        labels = {f"labeler.{n}": f"v{n}" for n in range(LABELERS)}
        assert entry.user_labels == labels, why(f"{host}: catalog lost an update")
        assert entry.snapshots == WINDOWS and entry.labels["rack"], why(host)
    assert_verify_clean(endpoint, bucket, capsys)


_CHILD = """
import json, sys
from snapcloud.store import Repository
from tests.reliability.test_concurrency import CONFIG, PREFIX, make_snapshots
endpoint, bucket, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
hosts, label_hosts = sys.argv[5].split(","), sys.argv[6].split(",")
repo = Repository.open(f"s3://{bucket}/{PREFIX}", endpoint_url=endpoint, config=CONFIG)
catalog = repo.catalog()
snaps = {h: make_snapshots(h, count) for h in hosts}
streams = {h: repo.stream(h, create=True) for h in hosts}
print("ready", flush=True)
sys.stdin.readline()  # the parent starts every worker at once
acked, todo = [], list(label_hosts)
for i in range(count):
    for h in hosts:
        e = streams[h].append(snaps[h][i])
        acked.append([h, e.seq, e.checksum])
        for _ in range(len(label_hosts) // (count * len(hosts)) + 1):
            if todo:
                catalog.set_user_labels(todo.pop(), {f"proc.{worker}": str(worker)})
for h in hosts:
    repo.refresh_catalog(h)
print(json.dumps(acked), flush=True)
"""


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPCLOUD_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["SNAPCLOUD_TEST_SEED"] = str(SEED)
    return env


def test_twenty_streams_from_four_processes_with_catalog_updates_and_a_compactor(
    s3_bucket: tuple[str, str], capsys: pytest.CaptureFixture[str], _figures: dict[str, object]
) -> None:
    endpoint, bucket = s3_bucket
    procs_n, count = 4, 6
    per = len(HOSTS) // procs_n
    procs = []
    for w in range(procs_n):
        hosts = HOSTS[w * per : (w + 1) * per]
        label_order = HOSTS[w:] + HOSTS[:w]  # every process labels every host
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    endpoint,
                    bucket,
                    str(w),
                    str(count),
                    ",".join(hosts),
                    ",".join(label_order),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=child_env(),
                cwd=ROOT,
            )
        )
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", why(
                p.stderr.read() if p.stderr else ""
            )
        with CompactorLoop(open_repo(endpoint, bucket).objects) as loop:
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            results = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, why(f"worker exited {p.returncode}: {err[-3000:]}")
    assert not loop.errors, why(f"compactor raised {loop.errors!r}")
    _figures.update(concurrent_compactor_runs=loop.runs, appends=len(HOSTS) * count)
    _figures.update(catalog_updates=len(HOSTS) * (procs_n + 1))
    loop.run_once()
    loop.run_once()
    acked: dict[str, dict[int, int]] = {}
    for out, _ in results:
        for host, seq, checksum in json.loads(out.splitlines()[-1]):
            assert seq not in acked.setdefault(host, {}), why(f"{host} seq {seq} acked twice")
            acked[host][seq] = checksum
    assert sorted(acked) == HOSTS
    repo = open_repo(endpoint, bucket)
    for host in HOSTS:
        want = dict(enumerate(make_snapshots(host, count)))
        assert acked[host] == {s: want[s].with_seq(s).checksum for s in want}, why(host)
        assert_stream_holds(repo, host, want)
        entry = repo.catalog().get(host)
        assert entry is not None, why(host)
        labels = {f"proc.{w}": str(w) for w in range(procs_n)}
        assert entry.user_labels == labels, why(f"{host}: catalog lost an update")
        assert entry.snapshots == count, why(f"{host}: catalog {entry.tiers}")
    assert_verify_clean(endpoint, bucket, capsys)


# ---------------------------------------------------------------------- two writers, one stream


def test_two_writers_racing_on_one_stream_lose_and_duplicate_nothing(
    s3_bucket: tuple[str, str], capsys: pytest.CaptureFixture[str], _figures: dict[str, object]
) -> None:
    """Each writer retries its snapshot after a ``ConflictError`` (rereading the stream), as
    a caller must: every acknowledged append is stored once, at the seq it was told."""
    endpoint, bucket = s3_bucket
    host, per_writer = "dup-host", 10
    snaps = {w: make_snapshots(host, per_writer, writer=w) for w in ("a", "b")}
    acked: dict[str, dict[int, ProfileSnapshot]] = {"a": {}, "b": {}}
    conflicts = {"a": 0, "b": 0}

    def writer(w: str) -> Callable[[], None]:
        def go() -> None:
            stream = open_repo(endpoint, bucket).stream(host, create=True)
            for snap in snaps[w]:
                for _ in range(50):
                    try:
                        entry = stream.append(snap)
                    except ConflictError:
                        conflicts[w] += 1
                        stream.refresh()
                        continue
                    acked[w][entry.seq] = snap
                    break
                else:
                    raise AssertionError(why(f"writer {w} never got an append in"))

        return go

    errors = run_threads([writer("a"), writer("b")])
    assert not errors, why(f"writers raised {errors!r}")
    _figures.update(conflict_errors=conflicts["a"] + conflicts["b"])
    both = {**acked["a"], **acked["b"]}
    assert len(both) == 2 * per_writer, why("two writers were told they own the same seq")
    assert_stream_holds(open_repo(endpoint, bucket), host, both)
    assert_verify_clean(endpoint, bucket, capsys)


class GatedStore(ForwardingStore):
    """Delegates to ``inner``; the first put whose key ends with ``suffix`` waits on ``gate``
    after signalling ``reached`` (to force one interleaving of two writers)."""

    def __init__(self, inner: ObjectStore, suffix: str, *, before: bool) -> None:
        super().__init__(inner)
        self.suffix = suffix
        self.before = before
        self.reached = threading.Event()
        self.gate = threading.Event()
        self._armed = True

    def _hold(self, key: str) -> None:
        if self._armed and key.endswith(self.suffix):
            self._armed = False
            self.reached.set()
            assert self.gate.wait(60), "gate never opened"

    def put(
        self, key: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        if self.before:
            self._hold(key)
        etag = self.inner.put(key, data, if_absent=if_absent, if_match=if_match)
        if not self.before:
            self._hold(key)
        return etag


def test_a_writer_that_lost_the_race_for_a_seq_gets_conflict_error(
    s3_bucket: tuple[str, str],
) -> None:
    """Both writers read the stream at seq 3; A appends seq 3 first; B's append of seq 3
    (its cached view is stale) must fail with ``ConflictError`` and leave A's entry alone."""
    endpoint, bucket = s3_bucket
    host = "dup-host-2"
    a = open_repo(endpoint, bucket).stream(host, create=True)
    base = make_snapshots(host, 3, writer="base")
    for snap in base:
        a.append(snap)
    b = open_repo(endpoint, bucket).stream(host)
    assert a.next_seq == b.next_seq == 3
    mine, theirs = make_snapshots(host, 1, writer="a")[0], make_snapshots(host, 1, writer="b")[0]
    assert a.append(mine).seq == 3
    with pytest.raises(ConflictError) as caught:
        b.append(theirs)
    assert caught.value.context.get("host") == host
    expected = {**dict(enumerate(base)), 3: mine}
    assert_stream_holds(open_repo(endpoint, bucket), host, expected)


def test_an_object_between_its_two_writes_is_not_taken_for_an_orphan(
    s3_bucket: tuple[str, str],
) -> None:
    """A has written the object of seq 3 but not yet its index entry; B appends seq 3 and
    sees no entry (before session 2's fix B took A's object for an orphan and overwrote
    it; data keys now name their content, so B writes its own object beside A's); A's
    segment write lands before B's. Exactly one writer may be told it stored seq 3, and
    seq 3 must read back as that writer's snapshot."""
    endpoint, bucket = s3_bucket
    host = "dup-host-3"
    setup = open_repo(endpoint, bucket).stream(host, create=True)
    for snap in make_snapshots(host, 3, writer="base"):
        setup.append(snap)
    gated = GatedStore(open_repo(endpoint, bucket).objects, ".json", before=True)
    a = HostStream(gated, host, CONFIG)
    gated_b = GatedStore(open_repo(endpoint, bucket).objects, ".json", before=True)
    b = HostStream(gated_b, host, CONFIG)
    assert a.next_seq == b.next_seq == 3
    mine, theirs = make_snapshots(host, 1, writer="a")[0], make_snapshots(host, 1, writer="b")[0]
    result: dict[str, Any] = {}

    def append_a() -> None:
        try:
            result["a"] = a.append(mine)  # object put, then held before its segment put
        except ConflictError as exc:
            result["a"] = exc

    t = threading.Thread(target=append_a, daemon=True)
    t.start()
    assert gated.reached.wait(60)
    # B runs while A sits between its object put and its segment put.
    b_thread = threading.Thread(
        target=lambda: result.__setitem__("b", _append_or_error(b, theirs)), daemon=True
    )
    b_thread.start()
    # B writes its object and stops before its segment write; A's segment lands first.
    assert gated_b.reached.wait(60), why(f"B never reached its segment write: {result!r}")
    gated.gate.set()
    t.join(60)
    gated_b.gate.set()
    b_thread.join(60)
    acked = {n: theirs if n == "b" else mine for n in ("a", "b") if not _failed(result[n])}
    assert len(acked) == 1, why(f"exactly one writer may get seq 3: {result!r}")
    ((_, snap),) = acked.items()
    assert_stream_holds(
        open_repo(endpoint, bucket),
        host,
        {**dict(enumerate(make_snapshots(host, 3, writer="base"))), 3: snap},
    )


def _append_or_error(stream: HostStream, snap: ProfileSnapshot) -> object:
    try:
        return stream.append(snap)
    except ConflictError as exc:
        return exc


def _failed(outcome: object) -> bool:
    return isinstance(outcome, ConflictError)


# ---------------------------------------------------------------------- recorder leases


class Clock:
    """Wall-clock seconds that move only when told."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_recorder_lease_expiry_and_takeover_on_s3(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    objects = open_repo(endpoint, bucket).objects
    key = lease_key("lease-host")
    clock_a, clock_b = Clock(1000.0), Clock(1010.0)
    a = Lease(objects, key, "box-a:1:aaaa", ttl_s=30, clock=clock_a)
    b = Lease(objects, key, "box-b:2:bbbb", ttl_s=30, clock=clock_b)
    a.acquire()
    with pytest.raises(LeaseHeld) as caught:
        b.acquire()
    assert caught.value.context["owner"] == "box-a:1:aaaa"
    assert caught.value.context["expires_at"] == 1030.0
    clock_b.t = 1029.9  # still live, by the reader's clock
    with pytest.raises(LeaseHeld):
        b.acquire()
    clock_b.t = 1030.0  # expired: taken over
    assert b.acquire().owner == "box-b:2:bbbb" and b.held
    clock_a.t = 1012.0  # A's renewal (before it noticed anything) finds out it lost the lease
    with pytest.raises(LeaseHeld) as lost:
        a.renew()
    assert not a.held and not a.valid() and "box-b:2:bbbb" in str(lost.value)
    assert a.release() is False  # a lost lease is left alone
    assert json.loads(objects.get(key).data)["owner"] == "box-b:2:bbbb"
    assert b.release() is True
    assert objects.head(key) is None


def test_racing_takeovers_of_an_expired_lease_have_one_winner(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    repo = open_repo(endpoint, bucket)
    key = lease_key("race-host")
    Lease(repo.objects, key, "dead-box:1:x", ttl_s=10, clock=Clock(0.0)).acquire()
    racers = [
        Lease(open_repo(endpoint, bucket).objects, key, f"racer-{i}:1:x", 60, Clock(100.0))
        for i in range(8)
    ]
    refused: list[LeaseHeld] = []

    def take(lease: Lease) -> Callable[[], None]:
        def go() -> None:
            try:
                lease.acquire()
            except LeaseHeld as exc:
                refused.append(exc)

        return go

    assert run_threads([take(r) for r in racers]) == []
    winners = [r for r in racers if r.held]
    assert len(winners) == 1 and len(refused) == 7, why(f"{len(winners)} winners")
    assert json.loads(repo.objects.get(key).data)["owner"] == winners[0].owner


def test_a_second_recorder_in_process_is_refused_while_the_first_records(
    s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    host = "rec-conc"
    holding = threading.Event()
    release = threading.Event()

    def on_window(w: SealedWindow) -> None:
        holding.set()
        assert release.wait(60)

    def cfg(name: str) -> RecorderConfig:
        return RecorderConfig(
            interval_s=0.05, window_s=0.2, fingerprint="conc", spool_dir=tmp_path / name,
            flush_timeout_s=10, lease_wait_s=10,
        )  # fmt: skip

    first = Recorder(
        open_repo(endpoint, bucket), host, [_collector()], cfg("a"), on_window=on_window
    )
    outcome: dict[str, Any] = {}
    t = threading.Thread(target=lambda: outcome.setdefault("a", first.run(duration=0.6)))
    t.start()
    try:
        assert holding.wait(60), "the first recorder never sealed a window"
        second = Recorder(open_repo(endpoint, bucket), host, [_collector()], cfg("b"))
        with pytest.raises(LeaseHeld, match="already being recorded") as caught:
            second.run(duration=0.6)
        assert first.lease.owner in str(caught.value)
    finally:
        release.set()
        t.join(60)
    assert outcome["a"].uploaded >= 1
    # The first released the lease on its way out: a new recorder takes the host at once.
    third = Recorder(open_repo(endpoint, bucket), host, [_collector()], cfg("c"))
    assert third.run(duration=0.3).uploaded >= 1
    snaps = [s.metadata["spool_id"] for s in open_repo(endpoint, bucket).stream(host).query()]
    assert len(snaps) == len(set(snaps)) >= 2


def _collector() -> Any:
    from snapcloud.collectors import CpuCollector

    return CpuCollector()


def _record_cmd(endpoint: str, bucket: str, host: str, spool: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "snapcloud", "record", "--host", host, "--no-gpu",
        "--interval", "0.1", "--window", "0.5", "--fingerprint", "conc",
        "--store", f"s3://{bucket}/{PREFIX}", "--endpoint-url", endpoint,
        "--spool-dir", str(spool), *args,
    ]  # fmt: skip


def test_two_record_processes_for_one_host_the_second_is_refused(
    s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    host = "rec-proc"
    spool = tmp_path / "spool"
    first = subprocess.Popen(
        _record_cmd(endpoint, bucket, host, spool, "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), cwd=tmp_path,
    )  # fmt: skip
    try:
        assert first.stdout is not None
        line = first.stdout.readline()  # one JSON line per sealed window: it is recording
        assert line.startswith("{"), why(f"first recorder: {line!r} {first.stderr}")
        lease = json.loads(open_repo(endpoint, bucket).objects.get(lease_key(host)).data)
        assert lease["owner"].split(":")[1] == str(first.pid)
        second = subprocess.run(
            _record_cmd(endpoint, bucket, host, tmp_path / "spool2", "--duration", "1"),
            capture_output=True, text=True, timeout=120, env=child_env(), cwd=tmp_path,
        )  # fmt: skip
        assert second.returncode == 2, why(second.stderr)
        assert "already being recorded" in second.stderr and str(first.pid) in second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    # Killed: its lease is still there, unexpired, naming a dead pid on this machine...
    objects = open_repo(endpoint, bucket).objects
    held = json.loads(objects.get(lease_key(host)).data)
    assert held["owner"].startswith(f"{socket.gethostname()}:{first.pid}:")
    assert held["expires_at"] > time.time()
    spooled = {p.name.split("-")[-1].removesuffix(".snap") for p in spool.glob("*.snap")}
    # ...so a restart on the same spool takes the host over at once and delivers the spool.
    third = subprocess.run(
        _record_cmd(endpoint, bucket, host, spool, "--duration", "1"),
        capture_output=True, text=True, timeout=120, env=child_env(), cwd=tmp_path,
    )  # fmt: skip
    assert third.returncode == 0, why(third.stderr)
    ids = [s.metadata["spool_id"] for s in open_repo(endpoint, bucket).stream(host).query()]
    assert len(ids) == len(set(ids)), why("a window was stored twice")
    assert spooled <= set(ids), why("a spooled window of the killed recorder was lost")
    assert objects.head(lease_key(host)) is None, "released on a clean exit"


# ---------------------------------------------------------------------- two compactors


def _compactable_bucket(endpoint: str, bucket: str, hosts: int = 3) -> dict[str, list[Any]]:
    repo = open_repo(endpoint, bucket)
    out: dict[str, list[Any]] = {}
    for i in range(hosts):
        host = f"cmp-{i}"
        out[host] = make_snapshots(host, WINDOWS)
        stream = repo.stream(host, create=True)
        for snap in out[host]:
            stream.append(snap)
    return out


def test_two_compactors_at_once_the_second_is_refused(
    s3_bucket: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint, bucket = s3_bucket
    data = _compactable_bucket(endpoint, bucket)
    paused, resume = threading.Event(), threading.Event()

    def hook(n: int, label: str) -> None:
        if n == 3:
            paused.set()
            assert resume.wait(60)

    a = Compactor(open_repo(endpoint, bucket).objects, CONFIG, POLICY, on_step=hook)
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.setdefault("a", a.run(now_ns=COMPACT_AT)))
    t.start()
    try:
        assert paused.wait(60), "the first compactor never reached its third write"
        b = Compactor(open_repo(endpoint, bucket).objects, CONFIG, POLICY)
        with pytest.raises(LeaseHeld) as caught:
            b.run(now_ns=COMPACT_AT)
        assert caught.value.context["key"] == COMPACTOR_LEASE_KEY
        # The CLI says so in one line, exit 2.
        capsys.readouterr()
        code = main(["compact", "--store", f"s3://{bucket}/{PREFIX}", "--endpoint-url", endpoint])
        err = capsys.readouterr().err
        assert code == 2 and "held by" in err and "Traceback" not in err, err
    finally:
        resume.set()
        t.join(120)
    assert "a" in result, "the first compactor failed"
    b.run(now_ns=COMPACT_AT + HOUR)  # after the first: the lease was released
    repo = open_repo(endpoint, bucket)
    for host, snaps in data.items():
        assert_stream_holds(repo, host, dict(enumerate(snaps)))
    assert len(tier_keys(endpoint, bucket, "compressed")) == 2 * len(data)
    assert_verify_clean(endpoint, bucket, capsys)


def test_a_compactor_whose_lease_was_taken_over_stops_and_the_data_stays_whole(
    s3_bucket: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint, bucket = s3_bucket
    data = _compactable_bucket(endpoint, bucket)
    clock_a = Clock(time.time())
    stalled, resume = threading.Event(), threading.Event()

    def hook(n: int, label: str) -> None:
        if n == 4:
            stalled.set()  # A stalls (a long GC pause, a stopped VM) past its lease's TTL
            assert resume.wait(60)
            clock_a.t += 61

    a = Compactor(
        open_repo(endpoint, bucket).objects, CONFIG, POLICY, lease_ttl_s=60, clock=clock_a,
        on_step=hook,
    )  # fmt: skip
    result: dict[str, Any] = {}

    def run_a() -> None:
        try:
            result["a"] = a.run(now_ns=COMPACT_AT)
        except LeaseHeld as exc:
            result["a"] = exc

    t = threading.Thread(target=run_a)
    t.start()
    assert stalled.wait(60)
    late = Clock(clock_a.t + 61)
    b = Compactor(open_repo(endpoint, bucket).objects, CONFIG, POLICY, lease_ttl_s=60, clock=late)
    b_report = b.run(now_ns=COMPACT_AT)  # A's lease has expired: B takes over and finishes
    resume.set()
    t.join(120)
    assert isinstance(result.get("a"), LeaseHeld), why(f"A went on without its lease: {result}")
    assert b_report is not None
    Compactor(open_repo(endpoint, bucket).objects, CONFIG, POLICY).run(now_ns=COMPACT_AT + HOUR)
    repo = open_repo(endpoint, bucket)
    for host, snaps in data.items():
        assert_stream_holds(repo, host, dict(enumerate(snaps)))
    assert len(tier_keys(endpoint, bucket, "compressed")) == 2 * len(data)
    assert_verify_clean(endpoint, bucket, capsys)


def test_two_compact_processes_the_second_is_refused(
    s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    _compactable_bucket(endpoint, bucket, hosts=1)
    args = ["compact", "--store", f"s3://{bucket}/{PREFIX}"]
    # The CLI uses the default policy (raw for 1 day): two days on, there is work to do.
    args += ["--endpoint-url", endpoint, "--now", str(T0 + 48 * HOUR)]
    # the first stops before its second write (tests/retention/pausing.py), lease held
    pausing = ["-m", "tests.retention.pausing", "2", "--"]
    first = subprocess.Popen(
        [sys.executable, *pausing, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
        text=True, env=child_env(), cwd=tmp_path,
    )  # fmt: skip
    try:
        assert first.stderr is not None
        line = first.stderr.readline()
        assert "paused before request 2:" in line, why(line + first.stderr.read())
        second = subprocess.run(
            [sys.executable, "-m", "snapcloud", *args], capture_output=True, text=True, timeout=120,
            env=child_env(), cwd=tmp_path,
        )  # fmt: skip
        assert second.returncode == 2, why(second.stderr)
        assert "held by" in second.stderr and str(first.pid) in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
